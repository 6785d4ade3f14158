import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { workerTargetBinding } from '../../scripts/deploy-manifests';
import { testbedLayout } from '../../scripts/testbed/layout';
import { nodeImages } from '../../scripts/testbed/node/node-lifecycle';
import { nodeNames, realNodeWanted } from '../../scripts/testbed/node/node-names';
import { testbedEnv } from './testbed';

import { statusOf } from '../../scripts/testbed/kubernetes-seed';
export { kubernetesNamespace, kwokNode, statusOf, waitForRollout } from '../../scripts/testbed/kubernetes-seed';
export { testbedFieldManager } from '../../scripts/testbed/kubernetes-apply';

export const layout = testbedLayout();

/**
 * The test bed's real node as the seed used it (names and local images), when the test bed has one
 * (TESTBED_REAL_NODE=1, which `up` needed too: a cluster keeps the Service range it was made with).
 * Pass it to the seed's helpers (`appDeployment`, `appImage`) so a test puts back what the seed made.
 */
export function testbedRealNode(): { names: ReturnType<typeof nodeNames>; images: Record<string, string> } | undefined {
  return realNodeWanted() ? { names: nodeNames(layout), images: nodeImages(layout) } : undefined;
}

function load(file: string | undefined, what: string): KubeConfig {
  if (!file) throw new Error(`${what} missing from the test bed env file: global setup did not run`);
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

/** system:masters on the test bed's cluster (TESTBED_KUBECONFIG_ADMIN of the env file): for setting up and checking, never for the worker. */
export function adminKubeConfig(): KubeConfig {
  return load(testbedEnv().TESTBED_KUBECONFIG_ADMIN, 'TESTBED_KUBECONFIG_ADMIN');
}

/** ServiceAccount short-drama-prod/runbook-readonly: get/list/watch in short-drama-prod, nothing else. */
export function readonlyKubeConfig(): KubeConfig {
  return load(testbedEnv().TESTBED_KUBECONFIG_READONLY, 'TESTBED_KUBECONFIG_READONLY');
}

/** A namespace of one's own; delete it with the returned function (deletion finishes in the background). */
export async function scratchNamespace(kc: KubeConfig, prefix = 'kube-test'): Promise<{ name: string; remove: () => Promise<void> }> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await core.createNamespace({ metadata: { name, labels: { 'runbook-testbed/scratch': 'true' } } });
  // A target of the runbooks: the worker's account may act there as in short-drama-prod (least privilege, deploy/kubernetes).
  await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding(name, workerTargetBinding(name));
  return {
    name,
    remove: async () => {
      await core.deleteNamespace(name).catch((err: unknown) => {
        if (statusOf(err) !== 404) throw err;
      });
    },
  };
}
