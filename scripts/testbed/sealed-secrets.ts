import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { applyObjects, readYamlObjects } from './kubernetes-apply';
import { kubernetesStateDir, pkiPaths } from './kubernetes-pki';
import { port, type TestbedLayout } from './layout';
import { isAlive, readPid, startDetached, stopDetached, waitUntil } from './processes';
import { serviceAccountToken } from './service-account-access';
import { waitEstablished } from './kubernetes-seed';
import type { TestbedContext } from './context';

/**
 * 使用Sealed Secrets: the real sealed-secrets controller (github.com/bitnami-labs/sealed-secrets),
 * built from the Go module proxy by build-sealed-secrets.sh, run as a host process of the test bed
 * (pid file `kube-sealed-secrets.pid`, log beside it), with or without the real node.
 *
 * The controller only knows `rest.InClusterConfig()`: it reads KUBERNETES_SERVICE_HOST/PORT and
 * the token and CA at the fixed path /var/run/secrets/kubernetes.io/serviceaccount. It runs in a
 * private mount namespace (`unshare --mount --propagation private`) in which a folder of the state
 * dir (its ServiceAccount's token, the cluster's CA) is bind-mounted there, so nothing of the host's
 * changes but the empty mount point itself (created when missing; a bind mount needs a directory).
 */
export const sealedSecretsVersion = 'v0.40.0';
export const sealedSecretsProcess = 'kube-sealed-secrets';
/** Where its keys live (POD_NAMESPACE) and its account. */
export const sealedSecretsNamespace = 'kube-system';
export const sealedSecretsAccount = 'sealed-secrets-controller';
/** The label of its sealing keys (upstream's `sealedsecrets.bitnami.com/sealed-secrets-key`). */
const keyLabel = 'sealedsecrets.bitnami.com/sealed-secrets-key';
const inClusterDir = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Measured on this 2-core machine under load: 4096-bit key generation took a few seconds once (keys are kept in kube-system across restarts). */
const keySize = 4096;

export interface SealedSecretsBinaries {
  controller: string;
  /** The SealedSecret CRD as the release ships it (helm/sealed-secrets/crds), copied at build time. */
  crds: string;
}

export function sealedSecretsBinaries(layout: TestbedLayout): SealedSecretsBinaries {
  const dir = join(layout.cacheDir, `sealed-secrets-${sealedSecretsVersion}`);
  return { controller: join(dir, 'bin', 'sealed-secrets-controller'), crds: join(dir, 'crds') };
}

/** The controller's certificate URL: SEALED_SECRETS_CERT_URL in the env file (in production, the in-cluster Service). */
export function sealedSecretsCertUrl(layout: TestbedLayout): string {
  return `http://127.0.0.1:${port(layout, 'sealedSecrets')}/v1/cert.pem`;
}

/** Builds the controller (about 2.5 minutes the first time on 2 cores) or finds it in the cache. */
export function installSealedSecrets(ctx: TestbedContext): SealedSecretsBinaries {
  const bins = sealedSecretsBinaries(ctx.layout);
  if (existsSync(bins.controller) && existsSync(bins.crds)) return bins;
  ctx.log(`kubernetes: building the sealed-secrets controller ${sealedSecretsVersion} from source (a few minutes the first time; progress below)`);
  const t0 = Date.now();
  const result = spawnSync('bash', [join(__dirname, 'build-sealed-secrets.sh')], {
    env: { ...process.env, TESTBED_CACHE_DIR: ctx.layout.cacheDir, SEALED_SECRETS_VERSION: sealedSecretsVersion },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (result.status !== 0) throw new Error(`build-sealed-secrets.sh exited with ${result.status ?? result.signal}`);
  ctx.log(`kubernetes: sealed-secrets controller built in ${Math.round((Date.now() - t0) / 1000)} s`);
  return bins;
}

/** The CRD, with its Helm labels dropped (as cert-manager's). */
export function sealedSecretsCrds(layout: TestbedLayout): KubernetesObject[] {
  const dir = sealedSecretsBinaries(layout).crds;
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => readYamlObjects(join(dir, f)))
    .map((crd) => ({ ...crd, metadata: { name: crd.metadata!.name } }));
}

/**
 * Our own RBAC for the controller, equivalent to upstream's chart (cluster-role.yaml, role.yaml):
 * it unseals into every namespace (Secrets), writes SealedSecret status and events, and keeps its
 * keys in its own namespace.
 */
function controllerAccount(): KubernetesObject[] {
  const name = sealedSecretsAccount;
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: sealedSecretsNamespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'runbook-testbed:sealed-secrets-controller' },
      rules: [
        { apiGroups: ['bitnami.com'], resources: ['sealedsecrets'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['bitnami.com'], resources: ['sealedsecrets/status'], verbs: ['update'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'update', 'delete', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'runbook-testbed:sealed-secrets-controller' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'runbook-testbed:sealed-secrets-controller' },
      subjects: [{ kind: 'ServiceAccount', name, namespace: sealedSecretsNamespace }],
    },
  ] as KubernetesObject[];
}

async function answers(url: string): Promise<boolean> {
  return (await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.ok === true;
}

/** /healthz answers and the certificate is served (so its first key exists). */
export async function sealedSecretsServing(layout: TestbedLayout): Promise<boolean> {
  const base = `http://127.0.0.1:${port(layout, 'sealedSecrets')}`;
  return (await answers(`${base}/healthz`)) && (await answers(`${base}/v1/cert.pem`));
}

/**
 * Starts the controller when it is not running (every `up`: it is started after the control plane,
 * once its account's token exists) and waits until it serves its certificate and its key Secret exists.
 */
export async function ensureSealedSecretsController(ctx: TestbedContext, kc: KubeConfig): Promise<void> {
  const { layout } = ctx;
  const pid = readPid(layout.stateDir, sealedSecretsProcess);
  if (pid !== undefined && isAlive(pid) && (await sealedSecretsServing(layout))) return;
  await stopDetached(layout.stateDir, sealedSecretsProcess);
  const bins = sealedSecretsBinaries(layout);
  // The CRD before the controller watches it (also when the control plane was reused).
  const crds = sealedSecretsCrds(layout);
  await applyObjects(kc, [...crds, ...controllerAccount()]);
  await waitEstablished(
    kc,
    crds.map((crd) => crd.metadata!.name!),
  );
  const token = await serviceAccountToken(kc, sealedSecretsNamespace, sealedSecretsAccount);
  const account = join(kubernetesStateDir(layout), 'sealed-secrets-serviceaccount');
  mkdirSync(account, { recursive: true });
  writeFileSync(join(account, 'token'), token, { mode: 0o600 });
  copyFileSync(pkiPaths(layout).caCert, join(account, 'ca.crt'));
  writeFileSync(join(account, 'namespace'), sealedSecretsNamespace);
  // The mount point of the in-cluster configuration: an empty directory on the host (nothing is
  // ever written into it there); the controller's own mount namespace binds our folder onto it.
  mkdirSync(inClusterDir, { recursive: true });
  const t0 = Date.now();
  // env, unshare and sh each exec the next, so the pid file holds the controller's pid; the
  // environment is on the command line, so restartDetached (outage tests) starts it the same way.
  startDetached(layout.stateDir, sealedSecretsProcess, 'env', [
    `KUBERNETES_SERVICE_HOST=127.0.0.1`,
    `KUBERNETES_SERVICE_PORT=${port(layout, 'kubeApiserver')}`,
    `POD_NAMESPACE=${sealedSecretsNamespace}`,
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount --bind "$1" "$2" && shift 2 && exec "$@"',
    'sealed-secrets',
    account,
    inClusterDir,
    bins.controller,
    `--listen-addr=127.0.0.1:${port(layout, 'sealedSecrets')}`,
    `--listen-metrics-addr=127.0.0.1:${port(layout, 'sealedSecretsMetrics')}`,
    `--key-size=${keySize}`,
    '--key-renew-period=0',
  ]);
  const core = kc.makeApiClient(CoreV1Api);
  await waitUntil(
    'sealed-secrets controller serving its certificate, its key Secret in kube-system',
    async () => {
      const now = readPid(layout.stateDir, sealedSecretsProcess);
      if (now === undefined || !isAlive(now)) throw new Error(`${sealedSecretsProcess} exited`);
      if (!(await sealedSecretsServing(layout))) return false;
      const keys = await core.listNamespacedSecret(sealedSecretsNamespace, undefined, undefined, undefined, undefined, keyLabel);
      return keys.body.items.length > 0;
    },
    120_000,
    join(layout.stateDir, `${sealedSecretsProcess}.log`),
  );
  ctx.log(`kubernetes: sealed-secrets controller serving after ${Date.now() - t0} ms`);
}

export function stopSealedSecretsController(layout: TestbedLayout): Promise<void> {
  return stopDetached(layout.stateDir, sealedSecretsProcess);
}
