import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { httpsGet, kubeConfigFromFile } from './kubernetes-apply';
import { installKubernetes, kubernetesBinaries } from './kubernetes-install';
import {
  adminKubeconfigPath,
  ensureKubernetesPki,
  kubernetesStateDir,
  readonlyKubeconfigPath,
  pkiPaths,
  readAdminToken,
  recordedServiceRange,
  writeKubeconfig,
  type KubernetesPki,
} from './kubernetes-pki';
import { applyClusterInfrastructure, certManagerNamespace, kubernetesNamespace, seedKubernetes } from './kubernetes-seed';
import { seedProdDatabase } from './postgres-server';
import { port, type TestbedLayout } from './layout';
import { isAlive, readPid, startDetached, stopDetached, waitUntil } from './processes';
import type { TestbedContext, TestbedServer } from './context';
import { kwokPodCidr, nodeNames } from './node/node-names';
import { ensureSealedSecretsController, installSealedSecrets, stopSealedSecretsController } from './sealed-secrets';

/**
 * The Kubernetes part of the test bed: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler, kwok (fake kubelet for one fake node), metrics-server and cert-manager's
 * controller (issuing the Ingress' certificate from a CA ClusterIssuer), each a detached
 * process with its own pid file (`kube-*.pid` in the state dir), all on 127.0.0.1.
 * Started in this order, stopped in the reverse one: the apiserver's clients, then the apiserver,
 * then etcd (the apiserver hangs on SIGTERM while etcd is gone).
 */
export const kubernetesProcesses = ['kube-etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-kwok', 'kube-metrics-server', 'kube-cert-manager'] as const;

export function apiserverUrl(layout: TestbedLayout): string {
  return `https://127.0.0.1:${port(layout, 'kubeApiserver')}`;
}

export { adminKubeconfigPath, readonlyKubeconfigPath };

/** The manual's audit policy and ours after it (deploy/kubernetes/audit-policy.yaml): the apiserver's --audit-policy-file. */
export function auditPolicyPath(layout: TestbedLayout): string {
  return join(layout.repoRoot, 'deploy', 'kubernetes', 'audit-policy.yaml');
}

/** Where the apiserver writes its audit events (JSON lines; rotated beside it): KUBERNETES_AUDIT_LOG in the env file. */
export function auditLogPath(layout: TestbedLayout): string {
  return join(kubernetesStateDir(layout), 'audit', 'audit.log');
}

/** Services get addresses from the test bed's own slot of 198.18.0.0/15 (RFC 2544), with or without the real node. */
function serviceRange(layout: TestbedLayout): string {
  return nodeNames(layout).serviceCidr;
}

/**
 * Refuses a state folder whose cluster was created with another Service range (another port base,
 * or 10.96.0.0/16 before the test bed kept to 198.18.0.0/15): its apiserver certificate and stored
 * Services fit only that range. Called before anything is started or stopped.
 */
export function checkServiceRange(layout: TestbedLayout): void {
  const recorded = recordedServiceRange(layout);
  const wanted = serviceRange(layout);
  if (recorded === undefined || recorded === wanted) return;
  throw new Error(
    `the state folder ${layout.stateDir} holds a cluster created with the Service range ${recorded}, but this run (TESTBED_PORT_BASE=${layout.portBase}) needs ${wanted}; use the settings it was created with, another TESTBED_STATE_DIR, or stop it (npm run testbed -- down kubernetes) and remove ${kubernetesStateDir(layout)}`,
  );
}

function logOf(layout: TestbedLayout, name: string): string {
  return join(layout.stateDir, `${name}.log`);
}

async function answers(url: string, options: { ca?: string; token?: string } = {}): Promise<boolean> {
  try {
    return (await httpsGet(url, options)).status === 200;
  } catch {
    return false;
  }
}

/** Waits for a component, failing early (with its log) if its process died. */
async function waitFor(layout: TestbedLayout, name: string, what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  await waitUntil(
    what,
    async () => {
      const pid = readPid(layout.stateDir, name);
      if (pid === undefined || !isAlive(pid)) throw new Error(`${name} exited`);
      return check();
    },
    timeoutMs,
    logOf(layout, name),
  );
}

async function startControlPlane(ctx: TestbedContext, pki: KubernetesPki): Promise<void> {
  const { layout } = ctx;
  const bins = kubernetesBinaries(layout);
  const state = kubernetesStateDir(layout);
  const kubeconfig = adminKubeconfigPath(layout);
  const p = (name: Parameters<typeof port>[1]) => String(port(layout, name));
  const loopback = '127.0.0.1';
  const t0 = Date.now();
  const lap = (what: string) => ctx.log(`kubernetes: ${what} after ${Date.now() - t0} ms`);

  const etcdClient = `http://${loopback}:${p('kubeEtcd')}`;
  const etcdPeer = `http://${loopback}:${p('kubeEtcdPeer')}`;
  startDetached(layout.stateDir, 'kube-etcd', bins.etcd, [
    '--name',
    'testbed',
    '--data-dir',
    join(state, 'etcd'),
    '--listen-client-urls',
    etcdClient,
    '--advertise-client-urls',
    etcdClient,
    '--listen-peer-urls',
    etcdPeer,
    '--initial-advertise-peer-urls',
    etcdPeer,
    '--initial-cluster',
    `testbed=${etcdPeer}`,
    '--initial-cluster-state',
    'new',
    '--unsafe-no-fsync',
    `--quota-backend-bytes=${2 * 1024 ** 3}`,
    '--log-level',
    'warn',
  ]);
  await waitFor(layout, 'kube-etcd', 'etcd /health', async () => (await fetch(`${etcdClient}/health`)).ok, 30_000);
  lap('etcd healthy');

  const api = apiserverUrl(layout);
  startDetached(layout.stateDir, 'kube-apiserver', bins.apiserver, [
    `--bind-address=${loopback}`,
    `--advertise-address=${loopback}`,
    `--secure-port=${p('kubeApiserver')}`,
    // The "kubernetes" Service's endpoints may not be a loopback address.
    '--endpoint-reconciler-type=none',
    `--etcd-servers=${etcdClient}`,
    `--tls-cert-file=${pki.apiserverCert}`,
    `--tls-private-key-file=${pki.apiserverKey}`,
    `--client-ca-file=${pki.caCert}`,
    `--token-auth-file=${pki.tokensCsv}`,
    '--authorization-mode=Node,RBAC',
    `--service-account-issuer=${api}`,
    `--service-account-key-file=${pki.saPub}`,
    `--service-account-signing-key-file=${pki.saKey}`,
    `--service-cluster-ip-range=${serviceRange(layout)}`,
    `--kubelet-client-certificate=${pki.kubeletClientCert}`,
    `--kubelet-client-key=${pki.kubeletClientKey}`,
    '--kubelet-preferred-address-types=InternalIP',
    // Aggregation layer, for metrics-server's metrics.k8s.io.
    `--requestheader-client-ca-file=${pki.caCert}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${pki.frontProxyCert}`,
    `--proxy-client-key-file=${pki.frontProxyKey}`,
    // Events of the seeded rollouts stay for a week (default: 1 h).
    '--event-ttl=168h',
    // API audit (审计日志): the manual's policy, as JSON lines to a file postIncidentReview reads.
    // 100 MB a file and 3 rotated ones beside it (audit-<time>.log), uncompressed so they stay readable.
    `--audit-policy-file=${auditPolicyPath(layout)}`,
    `--audit-log-path=${auditLogPath(layout)}`,
    '--audit-log-format=json',
    '--audit-log-maxsize=100',
    '--audit-log-maxbackup=3',
    '--audit-log-maxage=7',
    '--allow-privileged=true',
    '--profiling=false',
  ]);
  await waitFor(layout, 'kube-apiserver', 'kube-apiserver /readyz', () => answers(`${api}/readyz`, { ca: pki.caCert, token: pki.adminToken }), 120_000);
  lap('kube-apiserver ready');

  // kwok's and cert-manager's CRDs must exist before they watch them.
  await applyClusterInfrastructure(ctx, 'crds');
  lap('kwok and cert-manager CRDs established');

  const common = [`--kubeconfig=${kubeconfig}`, `--authentication-kubeconfig=${kubeconfig}`, `--authorization-kubeconfig=${kubeconfig}`, `--bind-address=${loopback}`];
  startDetached(layout.stateDir, 'kube-controller-manager', bins.controllerManager, [
    ...common,
    `--secure-port=${p('kubeControllerManager')}`,
    '--leader-elect=false',
    `--service-account-private-key-file=${pki.saKey}`,
    `--root-ca-file=${pki.caCert}`,
    '--use-service-account-credentials=true',
    `--cluster-signing-cert-file=${pki.caCert}`,
    `--cluster-signing-key-file=${pki.caKey}`,
    `--service-cluster-ip-range=${serviceRange(layout)}`,
    '--controllers=*',
    // kwok marks a pod Ready only while it is Pending: pods a NotReady node had set unready stay so
    // after it returns. Tests stop the apiserver for up to ~2 minutes, so the node (lease renewed by
    // kwok every 40 s) is given far longer than any outage before it counts as lost.
    '--node-monitor-grace-period=10m',
    '--profiling=false',
  ]);
  startDetached(layout.stateDir, 'kube-scheduler', bins.scheduler, [...common, `--secure-port=${p('kubeScheduler')}`, '--leader-elect=false', '--profiling=false']);
  startDetached(layout.stateDir, 'kube-kwok', bins.kwok, [
    `--kubeconfig=${kubeconfig}`,
    // Stages: the "fast" ones from the kwok module (see kubernetes-install.ts). No KwokConfiguration
    // document: one loaded from a file is not defaulted, and kwok exits.
    `--config=${join(bins.kwokAssets, 'stages.yaml')}`,
    '--manage-all-nodes=false',
    '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
    '--manage-nodes-with-label-selector=',
    '--manage-single-node=',
    `--cidr=${kwokPodCidr}`,
    `--node-ip=${loopback}`,
    `--node-port=${p('kwok')}`,
    `--server-address=${loopback}:${p('kwok')}`,
    `--tls-cert-file=${pki.kwokCert}`,
    `--tls-private-key-file=${pki.kwokKey}`,
    '--node-lease-duration-seconds=40',
    '--enable-crds=ClusterLogs,Logs,ClusterExec,Exec,ClusterAttach,Attach,ClusterPortForward,PortForward,Metric,ClusterResourceUsage,ResourceUsage',
  ]);
  startDetached(layout.stateDir, 'kube-metrics-server', bins.metricsServer, [
    ...common,
    `--secure-port=${p('kubeMetricsServer')}`,
    `--cert-dir=${join(state, 'metrics-server-certs')}`,
    '--kubelet-preferred-address-types=InternalIP',
    '--kubelet-use-node-status-port',
    '--kubelet-insecure-tls',
    // The real node's kubelet takes client certificates of the cluster's CA only (no token webhook): the API server's will do (kwok ignores it).
    `--kubelet-client-certificate=${pki.kubeletClientCert}`,
    `--kubelet-client-key=${pki.kubeletClientKey}`,
    '--metric-resolution=10s',
    '--kubelet-request-timeout=5s',
  ]);
  startDetached(layout.stateDir, 'kube-cert-manager', bins.certManager, [
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect=false',
    // Where the ClusterIssuer's CA Secret lives (the seed makes it).
    `--cluster-resource-namespace=${certManagerNamespace}`,
    `--metrics-listen-address=${loopback}:${p('certManagerMetrics')}`,
  ]);
  await Promise.all([
    waitFor(layout, 'kube-controller-manager', 'kube-controller-manager /healthz', () => answers(`https://${loopback}:${p('kubeControllerManager')}/healthz`), 60_000),
    waitFor(layout, 'kube-scheduler', 'kube-scheduler /healthz', () => answers(`https://${loopback}:${p('kubeScheduler')}/healthz`), 60_000),
    waitFor(layout, 'kube-kwok', 'kwok /healthz', () => answers(`https://${loopback}:${p('kwok')}/healthz`), 60_000),
    waitFor(layout, 'kube-metrics-server', 'metrics-server /healthz', () => answers(`https://${loopback}:${p('kubeMetricsServer')}/healthz`), 60_000),
    // cert-manager's controller has no health endpoint; its metrics server starts with its controllers.
    waitFor(
      layout,
      'kube-cert-manager',
      'cert-manager /metrics',
      async () => (await fetch(`http://${loopback}:${p('certManagerMetrics')}/metrics`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.ok === true,
      60_000,
    ),
  ]);
  lap('controller-manager, scheduler, kwok, metrics-server, cert-manager healthy');
  await applyClusterInfrastructure(ctx, 'rest');
  lap('kwok node, metrics and aggregation objects applied');
}

export const kubernetesServer: TestbedServer = {
  name: 'kubernetes',
  ports: ['kubeEtcd', 'kubeEtcdPeer', 'kubeApiserver', 'kubeControllerManager', 'kubeScheduler', 'kwok', 'kubeMetricsServer', 'certManagerMetrics', 'sealedSecrets', 'sealedSecretsMetrics'],
  install(ctx) {
    installKubernetes(ctx);
    installSealedSecrets(ctx);
  },
  async isHealthy(ctx) {
    const { layout } = ctx;
    const token = readAdminToken(layout);
    const ca = pkiPaths(layout).caCert;
    if (!token || !existsSync(ca)) return false;
    const api = apiserverUrl(layout);
    if (!(await answers(`${api}/readyz`, { ca, token }))) return false;
    // Seeded, and every process of ours still there (a half-running control plane is not reused).
    if (!(await answers(`${api}/api/v1/namespaces/${kubernetesNamespace}`, { ca, token }))) return false;
    // An apiserver started before the test bed audited has written no audit log: restarted, with the audit flags.
    if (!existsSync(auditLogPath(layout))) return false;
    return kubernetesProcesses.every((name) => {
      const pid = readPid(layout.stateDir, name);
      return pid !== undefined && isAlive(pid);
    });
  },
  async start(ctx) {
    const { layout } = ctx;
    checkServiceRange(layout);
    const state = kubernetesStateDir(layout);
    mkdirSync(state, { recursive: true });
    mkdirSync(dirname(auditLogPath(layout)), { recursive: true });
    // Leftovers of a half-started control plane (ours, by pid file) go first.
    await kubernetesServer.stop!(layout);
    const hadPki = existsSync(join(pkiPaths(layout).dir, '.complete'));
    const pki = ensureKubernetesPki(layout, serviceRange(layout));
    // Data signed by another service-account key (tokens, secrets) would be useless: start clean.
    if (!hadPki) rmSync(join(state, 'etcd'), { recursive: true, force: true });
    writeKubeconfig(adminKubeconfigPath(layout), apiserverUrl(layout), pki.caCert, 'runbook-testbed-admin', pki.adminToken);
    await startControlPlane(ctx, pki);
  },
  async seed(ctx) {
    // On the real node the app logs in as its role: the database is seeded before the app rolls out.
    await seedKubernetes(ctx, { beforeApp: ctx.realNode ? () => seedProdDatabase(ctx) : undefined });
    // Started here, not with the control plane: on every up, also when the control plane was reused.
    await ensureSealedSecretsController(ctx, kubeConfigFromFile(adminKubeconfigPath(ctx.layout)));
  },
  async stop(layout) {
    // The apiserver's clients first (together: each takes ~2 s to shut down), then the apiserver, then etcd.
    const [etcd, apiserver, ...clients] = kubernetesProcesses;
    await Promise.all([...clients.map((name) => stopDetached(layout.stateDir, name)), stopSealedSecretsController(layout)]);
    await stopDetached(layout.stateDir, apiserver);
    await stopDetached(layout.stateDir, etcd);
  },
};
