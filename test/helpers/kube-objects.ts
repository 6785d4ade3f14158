import { randomUUID } from 'node:crypto';
import { AppsV1Api, PatchUtils, type KubeConfig } from '@kubernetes/client-node';
import { waitForRollout } from './kube-cluster';

/** A strategic-merge patch of a Deployment, as `kubectl patch deployment` sends it. */
export async function patchDeployment(kc: KubeConfig, namespace: string, name: string, patch: object): Promise<void> {
  await kc
    .makeApiClient(AppsV1Api)
    .patchNamespacedDeployment(name, namespace, patch, undefined, undefined, undefined, undefined, undefined, { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_STRATEGIC_MERGE_PATCH } });
}

/** `kubectl rollout restart` and waiting for the rollout: every pod of the Deployment replaced. */
export async function rolloutRestart(kc: KubeConfig, namespace: string, name: string, timeoutMs = 180_000): Promise<void> {
  await patchDeployment(kc, namespace, name, { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } });
  await waitForRollout(kc, namespace, name, timeoutMs);
}

/**
 * A new rollout revision of a Deployment: changes an annotation of its pod template (as
 * `kubectl rollout restart` does), waits for the rollout, and returns the new revision number.
 */
export async function newRolloutRevision(kc: KubeConfig, namespace: string, name: string, note = randomUUID()): Promise<number> {
  const apps = kc.makeApiClient(AppsV1Api);
  await patchDeployment(kc, namespace, name, { spec: { template: { metadata: { annotations: { 'runbook-testbed/change': note } } } } });
  await waitForRollout(kc, namespace, name);
  const { body } = await apps.readNamespacedDeployment(name, namespace);
  return Number(body.metadata?.annotations?.['deployment.kubernetes.io/revision']);
}
