import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { ensureDemoApprovers } from './approver-keys';
import { readEnvFile, sandboxApproverKeyDir } from '../../config/sandbox';
import { writeEnvFile } from './env-file';
import { port, testbedLayout, type TestbedLayout } from './layout';
import { isPortOpen, stopDetached } from './processes';
import { appTrafficServer, appTrafficUrl, capacityMetricsServer, podDiscoveryServer, webhookServer, webhookUrl } from './node-servers';
import { postgresServer, postgresUrl, restoreDrillUrl, seedDatabase, workerPostgresUrl } from './postgres-server';
import { prometheusServer, prometheusUrl } from './prometheus-server';
import { alertmanagerServer, alertmanagerUrl } from './alertmanager-server';
import { redisAdminUrl, redisServer, redisUrl } from './redis-server';
import { backupBucket, s3Endpoint, s3Server } from './s3-server';
import { sandboxPayloadKeyId, temporalBinary, temporalServer } from './temporal-server';
import { kubernetesBinaries } from './kubernetes-install';
import { adminKubeconfigPath, auditLogPath, checkServiceRange, kubernetesServer, readonlyKubeconfigPath } from './kubernetes-server';
import type { ServiceName, TestbedContext, TestbedSecrets, TestbedServer } from './context';
import { nodeNames, realNodeWanted } from './node/node-names';
import { workerKubeconfigPath } from './service-account-access';
import { sealedSecretsCertUrl } from './sealed-secrets';
import { otelCollectorServer, otelTracesFile, otlpEndpoint } from './otel-collector';
import { nodeDown, nodePrepare, nodeUp } from './node/node-lifecycle';
import { claimNode } from './node/node-network';

export type { ServiceName } from './context';
export const allServices: ServiceName[] = [
  'temporal',
  'postgres',
  'redis',
  's3',
  'prometheus',
  'alertmanager',
  'webhook',
  'capacity-metrics',
  'app-traffic',
  'pod-discovery',
  'kubernetes',
  'otel-collector',
];
/** Servers of the real node's app: its users and Prometheus' discovery of its pods (left out with TESTBED_REAL_NODE=0). */
export const nodeOnlyServices: ServiceName[] = ['app-traffic', 'pod-discovery'];
const servers: Record<ServiceName, TestbedServer> = {
  temporal: temporalServer,
  postgres: postgresServer,
  redis: redisServer,
  s3: s3Server,
  prometheus: prometheusServer,
  alertmanager: alertmanagerServer,
  webhook: webhookServer,
  'capacity-metrics': capacityMetricsServer,
  'app-traffic': appTrafficServer,
  'pod-discovery': podDiscoveryServer,
  kubernetes: kubernetesServer,
  'otel-collector': otelCollectorServer,
};

export interface TestbedHandle {
  /** The generated env file: ports and credentials for tests and `npm start`. */
  envFile: string;
  env: Record<string, string>;
  /** Services this call started (the rest were already running and are left alone on teardown). */
  started: ServiceName[];
  layout: TestbedLayout;
}

function loadOrCreateSecrets(envFile: string): TestbedSecrets {
  const previous = readEnvFile(envFile);
  const token = () => randomBytes(18).toString('hex');
  return {
    postgresPassword: previous.TESTBED_POSTGRES_PASSWORD ?? token(),
    appDatabasePassword: previous.TESTBED_APP_DATABASE_PASSWORD ?? token(),
    workerDatabasePassword: previous.TESTBED_WORKER_DATABASE_PASSWORD ?? token(),
    redisPassword: previous.TESTBED_REDIS_PASSWORD ?? token(),
    redisWorkerPassword: previous.TESTBED_REDIS_WORKER_PASSWORD ?? token(),
    restoreDrillPassword: previous.TESTBED_RESTORE_DRILL_PASSWORD ?? token(),
    s3AccessKeyId: previous.TESTBED_S3_ADMIN_ACCESS_KEY_ID ?? `TB${randomBytes(9).toString('hex').toUpperCase()}`,
    s3SecretAccessKey: previous.TESTBED_S3_ADMIN_SECRET_ACCESS_KEY ?? token(),
    s3WorkerAccessKeyId: previous.S3_ACCESS_KEY_ID ?? `RW${randomBytes(9).toString('hex').toUpperCase()}`,
    s3WorkerSecretAccessKey: previous.S3_SECRET_ACCESS_KEY ?? token(),
    alertBridgeToken: previous.ALERT_BRIDGE_TOKEN ?? token(),
    payloadKey: previous.TESTBED_PAYLOAD_KEY ?? randomBytes(32).toString('base64'),
    codecToken: previous.TESTBED_CODEC_TOKEN ?? token(),
  };
}

/** The configuration the worker reads (see config/), pointing at the test bed. */
function testbedEnv(ctx: TestbedContext): Record<string, string> {
  const { layout, secrets } = ctx;
  return {
    TEMPORAL_ADDRESS: `127.0.0.1:${port(layout, 'temporalGrpc')}`,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_UI_URL: `http://127.0.0.1:${port(layout, 'temporalUi')}`,
    // The worker's least-privilege role (deploy/postgres/runbook-worker.sql); tests set up with TESTBED_DATABASE_ADMIN_URL.
    DATABASE_URL: workerPostgresUrl(ctx, seedDatabase),
    TESTBED_DATABASE_ADMIN_URL: postgresUrl(ctx, seedDatabase),
    RESTORE_DRILL_DATABASE_URL: restoreDrillUrl(ctx),
    // The worker's ACL user (deploy/redis/runbook-worker.acl); tests set up with TESTBED_REDIS_ADMIN_URL.
    REDIS_URL: redisUrl(ctx),
    TESTBED_REDIS_ADMIN_URL: redisAdminUrl(ctx),
    S3_ENDPOINT: s3Endpoint(ctx),
    S3_REGION: 'us-east-1',
    S3_BUCKET: backupBucket,
    S3_FORCE_PATH_STYLE: 'true',
    // The worker's identity (the allowlisted prefixes only); tests set up with the TESTBED_S3_ADMIN_ keys.
    S3_ACCESS_KEY_ID: secrets.s3WorkerAccessKeyId,
    S3_SECRET_ACCESS_KEY: secrets.s3WorkerSecretAccessKey,
    TESTBED_S3_ADMIN_ACCESS_KEY_ID: secrets.s3AccessKeyId,
    TESTBED_S3_ADMIN_SECRET_ACCESS_KEY: secrets.s3SecretAccessKey,
    PROMETHEUS_URL: prometheusUrl(ctx),
    // The alert bridge on the port the test bed's Alertmanager posts to, with the token it sends.
    ALERT_BRIDGE_LISTEN: `127.0.0.1:${port(layout, 'alertBridge')}`,
    ALERT_BRIDGE_TOKEN: secrets.alertBridgeToken,
    // Demo approvers with keys (.testbed/approver-keys/), so approvals are signed in the sandbox too.
    RUNBOOK_APPROVERS: JSON.stringify(ensureDemoApprovers(layout.stateDir)),
    ALERT_BRIDGE_SIGNING_KEY: join(sandboxApproverKeyDir(layout.stateDir), 'alert-bridge'),
    TESTBED_ALERTMANAGER_URL: alertmanagerUrl(ctx),
    NOTIFY_WEBHOOK_URL: `${webhookUrl(ctx)}/notify`,
    TESTBED_WEBHOOK_URL: webhookUrl(ctx),
    TESTBED_APP_TRAFFIC_URL: appTrafficUrl(ctx),
    TESTBED_POSTGRES_PASSWORD: secrets.postgresPassword,
    TESTBED_APP_DATABASE_PASSWORD: secrets.appDatabasePassword,
    TESTBED_WORKER_DATABASE_PASSWORD: secrets.workerDatabasePassword,
    TESTBED_REDIS_PASSWORD: secrets.redisPassword,
    TESTBED_REDIS_WORKER_PASSWORD: secrets.redisWorkerPassword,
    TESTBED_RESTORE_DRILL_PASSWORD: secrets.restoreDrillPassword,
    TESTBED_POSTGRES_ADMIN_URL: postgresUrl(ctx, 'postgres'),
    // The worker's own account (deploy/kubernetes's least-privilege RBAC), as in a real cluster; tests set up with the admin's.
    KUBECONFIG: workerKubeconfigPath(layout),
    // The apiserver's audit log (deploy/kubernetes/audit-policy.yaml), read by postIncidentReview.
    KUBERNETES_AUDIT_LOG: auditLogPath(layout),
    SEALED_SECRETS_CERT_URL: sealedSecretsCertUrl(layout),
    TESTBED_KUBECONFIG_ADMIN: adminKubeconfigPath(layout),
    TESTBED_KUBECONFIG_READONLY: readonlyKubeconfigPath(layout),
    TESTBED_KUBECTL: kubernetesBinaries(layout).kubectl,
    TESTBED_TEMPORAL_CLI: temporalBinary(ctx),
    // Tracing stays off unless a process is given OTEL_EXPORTER_OTLP_ENDPOINT: this is the collector to give it.
    TESTBED_OTLP_ENDPOINT: otlpEndpoint(layout),
    TESTBED_OTEL_TRACES_FILE: otelTracesFile(layout),
    TESTBED_PAYLOAD_KEY: secrets.payloadKey,
    TESTBED_CODEC_TOKEN: secrets.codecToken,
    ...(ctx.payloadEncryption ? payloadEncryptionEnv(ctx) : {}),
  };
}

/** The worker's payload encryption settings when the sandbox encrypts: its key, and the codec server the UI calls. */
function payloadEncryptionEnv({ layout, secrets }: TestbedContext): Record<string, string> {
  const uiPort = port(layout, 'temporalUi');
  return {
    RUNBOOK_PAYLOAD_KEYS: JSON.stringify({ [sandboxPayloadKeyId]: secrets.payloadKey }),
    RUNBOOK_PAYLOAD_KEY_ID: sandboxPayloadKeyId,
    RUNBOOK_CODEC_LISTEN: `127.0.0.1:${port(layout, 'codecServer')}`,
    RUNBOOK_CODEC_TOKEN: secrets.codecToken,
    RUNBOOK_CODEC_CORS_ORIGINS: `http://127.0.0.1:${uiPort},http://localhost:${uiPort}`,
  };
}

async function firstOpenPort(ports: number[]): Promise<number | undefined> {
  for (const candidate of ports) if (await isPortOpen(candidate)) return candidate;
  return undefined;
}

/**
 * Whether a server answers its health check. One that misses it while its ports are open is asked
 * twice more, 2 s apart, before it counts as down: on a loaded machine a check can miss its short
 * timeout, and a server counted as down is stopped and started again under a test run using it.
 */
async function healthy(server: TestbedServer, ctx: TestbedContext): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    if (await server.isHealthy(ctx).catch(() => false)) return true;
    if (attempt === 3 || (await firstOpenPort(server.ports.map((name) => port(ctx.layout, name)))) === undefined) return false;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

export interface UpOptions {
  services?: ServiceName[];
  /** Encrypt payloads and start the UI with the codec endpoint (default: TESTBED_PAYLOAD_ENCRYPTION=1). */
  payloadEncryption?: boolean;
  log?: (line: string) => void;
}

/**
 * Installs (cached) and starts the requested servers on loopback, reusing any that already answer,
 * seeds them, and writes the env file.
 */
export async function up(options: UpOptions = {}): Promise<TestbedHandle> {
  const layout = testbedLayout();
  const log = options.log ?? ((line: string) => console.error(`[testbed] ${line}`));
  mkdirSync(layout.stateDir, { recursive: true });
  const payloadEncryption = options.payloadEncryption ?? ['1', 'true', 'yes'].includes((process.env.TESTBED_PAYLOAD_ENCRYPTION ?? '').toLowerCase());
  const ctx: TestbedContext = { layout, secrets: loadOrCreateSecrets(layout.envFile), log, payloadEncryption };
  const env = testbedEnv(ctx);
  // Written first: the secrets must survive even if a start below fails.
  writeEnvFile(layout.envFile, env, 'generated by scripts/testbed; ports and credentials of the local test bed');
  const requested = options.services ?? allServices;
  // Before anything is reused, stopped or started: a cluster of another Service range is refused.
  if (requested.includes('kubernetes')) checkServiceRange(layout);
  const withNode = realNodeWanted() && requested.includes('kubernetes');
  // The app's users and Prometheus' discovery of its pods come with the app, which runs on the real node only.
  const wanted = requested.filter((name) => !nodeOnlyServices.includes(name) || withNode);
  // One real node per machine: a second test bed is refused before anything of it starts.
  if (withNode) claimNode(nodeNames(layout), layout.stateDir);
  for (const name of wanted) servers[name].install(ctx);
  const started: ServiceName[] = [];
  try {
    await startServers(ctx, wanted, started, withNode);
  } catch (err) {
    // Nothing half-started stays behind: what this call started stops again (the node with kubernetes).
    await down(started, layout).catch(() => undefined);
    throw err;
  }
  return { envFile: layout.envFile, env, started, layout };
}

/** Starts the wanted servers that do not answer yet (recording each in `started`), the real node, then the seeds. */
async function startServers(ctx: TestbedContext, wanted: ServiceName[], started: ServiceName[], withNode: boolean): Promise<void> {
  const { layout, log } = ctx;
  // The real node (containerd, kubelet, kube-proxy) joins the cluster beside kwok's. What it needs no
  // apiserver for (containerd, its images) is made ready while the servers start.
  const nodePrepared = withNode ? nodePrepare(layout, log) : undefined;
  nodePrepared?.catch(() => undefined); // awaited below; a server failing first must not leave it unhandled
  // Every start settles before a failure is thrown, so `started` names all that must be stopped again.
  const starts = await Promise.allSettled(
    wanted.map(async (name) => {
      const server = servers[name];
      if (await healthy(server, ctx)) {
        log(`${name}: already running, reused`);
        return;
      }
      // A server may be half up (e.g. one of its processes crashed): stop what is ours (by pid file) first.
      await stopServer(name, layout);
      const busy = await firstOpenPort(server.ports.map((name) => port(layout, name)));
      if (busy !== undefined) {
        throw new Error(`${name}: port ${busy} is taken by another process that is not this test bed's ${name}; stop it or set TESTBED_PORT_BASE`);
      }
      const t0 = Date.now();
      started.push(name); // before it answers: a start failing half-way is stopped too
      await server.start(ctx);
      log(`${name}: started in ${Date.now() - t0} ms`);
    }),
  );
  const failed = starts.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  // The node joins before the seeds: short-drama-prod's servers run there.
  if (nodePrepared) {
    const node = await nodeUp(layout, log, await nodePrepared);
    ctx.realNode = { names: nodeNames(layout), images: node.images };
  }
  // S3 seeding dumps PostgreSQL, so seeds run in catalogue order after every server is up.
  for (const name of allServices) {
    if (!wanted.includes(name)) continue;
    if (name === 's3' && !wanted.includes('postgres')) continue;
    await servers[name].seed?.(ctx);
  }
}

/** A server's own stop, or by default its process by pid file. */
function stopServer(name: ServiceName, layout: TestbedLayout): Promise<void> {
  return servers[name].stop?.(layout) ?? stopDetached(layout.stateDir, name);
}

/** Stops the named servers (by default every one with a pid file of ours). */
export async function down(services: ServiceName[] = allServices, layout: TestbedLayout = testbedLayout()): Promise<void> {
  // A real node goes first, in its own order, while the apiserver can still delete its pods (no-op without one).
  if (services.includes('kubernetes')) await nodeDown(layout, (line) => console.error(`[testbed] ${line}`));
  await Promise.all(services.map((name) => stopServer(name, layout)));
}

/** Whether a server of the running test bed answers, by the same check `up` waits on (its env file's credentials). */
export function serverAnswers(name: ServiceName, layout: TestbedLayout = testbedLayout()): Promise<boolean> {
  const ctx: TestbedContext = { layout, secrets: loadOrCreateSecrets(layout.envFile), log: () => undefined, payloadEncryption: false };
  return servers[name].isHealthy(ctx);
}

export function readTestbedEnv(): Record<string, string> {
  return readEnvFile(testbedLayout().envFile);
}
