import { createHash } from 'node:crypto';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sandboxEnvFile, sandboxStateDir } from '../../config/sandbox';

/** Everything the test bed needs to know about where things live on this machine. */
export interface TestbedLayout {
  repoRoot: string;
  /** Per-checkout runtime state: data dirs, logs, pid files, the env file. */
  stateDir: string;
  /** Installed binaries, shared by every checkout and kept between runs. */
  cacheDir: string;
  envFile: string;
  /** PostgreSQL refuses to run as root; when we are root its data lives where its own user can reach. */
  postgresDir: string;
  portBase: number;
}

export function testbedLayout(repoRoot = resolve(__dirname, '..', '..')): TestbedLayout {
  const stateDir = sandboxStateDir(repoRoot);
  const checkoutId = createHash('sha256').update(stateDir).digest('hex').slice(0, 10);
  const portBase = Number(process.env.TESTBED_PORT_BASE ?? 17200);
  if (!Number.isInteger(portBase) || portBase < 1024 || portBase > 65000) {
    throw new Error(`TESTBED_PORT_BASE must be an integer between 1024 and 65000, got ${process.env.TESTBED_PORT_BASE}`);
  }
  return {
    repoRoot,
    stateDir,
    cacheDir: process.env.TESTBED_CACHE_DIR ?? join(homedir(), '.cache', 'runbook-testbed'),
    envFile: sandboxEnvFile(stateDir),
    postgresDir: join(tmpdir(), `runbook-testbed-pg-${checkoutId}`),
    portBase,
  };
}

/** Fixed offsets from the port base, so URLs stay the same from run to run. */
export const portOffsets = {
  temporalGrpc: 33,
  temporalUi: 34,
  temporalMetrics: 35,
  temporalHttp: 36,
  // The payload codec server the worker (`npm start`) runs when the sandbox encrypts (TESTBED_PAYLOAD_ENCRYPTION=1); the UI calls it.
  codecServer: 37,
  postgres: 32,
  // Nothing ever listens here: tests use it for "target down".
  alwaysClosed: 31,
  redis: 79,
  prometheus: 90,
  // Alertmanager (93, as 9093) posts the alerts of the rules Prometheus loads to the alert bridge (95, as 9095).
  alertmanager: 93,
  alertBridge: 95,
  webhook: 80,
  capacityMetrics: 81,
  // short-drama-app's users (app-traffic.js, with the real node): its status page.
  appTraffic: 82,
  // Prometheus' HTTP service discovery of the app's pods (pod-discovery.js, with the real node).
  podDiscovery: 83,
  // The runbook worker's metrics, scraped by Prometheus (job runbook-worker): `npm start`'s worker, and the worker process of test/worker-metrics.test.ts.
  workerMetrics: 97,
  testWorkerMetrics: 98,
  s3: 40,
  // SeaweedFS runs several internal servers; each needs a port of its own.
  seaweedMaster: 41,
  seaweedMasterGrpc: 42,
  seaweedVolume: 43,
  seaweedVolumeGrpc: 44,
  seaweedFiler: 45,
  seaweedFilerGrpc: 46,
  seaweedS3Grpc: 47,
  seaweedIceberg: 48,
  seaweedLance: 49,
  seaweedAdmin: 50,
  seaweedAdminGrpc: 51,
  seaweedMetrics: 52,
  // Kubernetes (scripts/testbed/kubernetes-*.ts): one port per control-plane process.
  kubeEtcd: 53,
  kubeEtcdPeer: 54,
  kubeApiserver: 55,
  kubeControllerManager: 56,
  kubeScheduler: 57,
  kwok: 58,
  kubeMetricsServer: 59,
  certManagerMetrics: 64,
  // The sealed-secrets controller (使用Sealed Secrets): its /v1/cert.pem and /healthz, and its metrics.
  sealedSecrets: 65,
  sealedSecretsMetrics: 66,
  // The OpenTelemetry Collector's OTLP/HTTP receiver (otel-collector.ts).
  otlpHttp: 67,
  // The real node (scripts/testbed/node/, TESTBED_REAL_NODE=1).
  kubelet: 60,
  kubeletHealthz: 61,
  kubeProxyHealthz: 62,
  kubeProxyMetrics: 63,
} as const;

export type PortName = keyof typeof portOffsets;

export function port(layout: TestbedLayout, name: PortName): number {
  return layout.portBase + portOffsets[name];
}
