import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { applyObjects } from './kubernetes-apply';
import { kubernetesBinaries } from './kubernetes-install';
import { kubernetesStateDir, pkiPaths, writeKubeconfig } from './kubernetes-pki';
import { port, type TestbedLayout } from './layout';
import { runChecked, waitUntil } from './processes';
import { workerNamespace, workerServiceAccount } from '../deploy-manifests';

/** The deploy/kubernetes overlay the test bed applies: the worker's namespace, account and least-privilege RBAC. */
export function sandboxOverlayDir(layout: TestbedLayout): string {
  return join(layout.repoRoot, 'deploy', 'kubernetes', 'overlays', 'sandbox');
}

/** Token of ServiceAccount `runbook-automation/runbook-worker` (deploy/kubernetes's RBAC): TESTBED_KUBECONFIG_WORKER. */
export function workerKubeconfigPath(layout: TestbedLayout): string {
  return join(kubernetesStateDir(layout), 'worker.kubeconfig');
}

/**
 * A kubeconfig that authenticates as a ServiceAccount, with the token of a legacy token Secret
 * (`<account>-token`, created here when missing; the token controller fills it in).
 */
export async function writeServiceAccountKubeconfig(layout: TestbedLayout, kc: KubeConfig, namespace: string, account: string, file: string): Promise<void> {
  const token = await serviceAccountToken(kc, namespace, account);
  writeKubeconfig(file, `https://127.0.0.1:${port(layout, 'kubeApiserver')}`, pkiPaths(layout).caCert, account, token, namespace);
}

/** The token of a legacy token Secret of the ServiceAccount (`<account>-token`, created here when missing; the token controller fills it in). */
export async function serviceAccountToken(kc: KubeConfig, namespace: string, account: string): Promise<string> {
  await applyObjects(kc, [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${account}-token`, namespace, annotations: { 'kubernetes.io/service-account.name': account } },
      type: 'kubernetes.io/service-account-token',
    } as never,
  ]);
  const core = kc.makeApiClient(CoreV1Api);
  let token = '';
  await waitUntil(
    `token of ServiceAccount ${namespace}/${account}`,
    async () => {
      const secret = await core.readNamespacedSecret(`${account}-token`, namespace);
      token = Buffer.from(secret.body.data?.token ?? '', 'base64').toString('utf8');
      return token.length > 0;
    },
    60_000,
  );
  return token;
}

/** Applies the sandbox overlay with `kubectl apply -k` (as a user would) and writes the worker account's kubeconfig. */
export async function applyWorkerAccount(layout: TestbedLayout, kc: KubeConfig, adminKubeconfig: string): Promise<void> {
  runChecked(kubernetesBinaries(layout).kubectl, [
    '--kubeconfig',
    adminKubeconfig,
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager',
    'runbook-testbed',
    '-k',
    sandboxOverlayDir(layout),
  ]);
  await writeServiceAccountKubeconfig(layout, kc, workerNamespace, workerServiceAccount, workerKubeconfigPath(layout));
}
