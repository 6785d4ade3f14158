import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, NetworkingV1Api, PolicyV1Api } from '@kubernetes/client-node';
import { adminKubeConfig } from './helpers/kube-cluster';
import { testbedEnv } from './helpers/testbed';
import { waitUntil } from '../scripts/testbed/processes';

/**
 * deploy/kubernetes against the test bed's real API server: the sandbox overlay is what the test
 * bed applied (every object of the base, the Deployments at 0 replicas on kwok), and the example
 * production overlay is accepted object by object (a server-side dry run validates each one,
 * admission included).
 */
describe('deploy/kubernetes on the real API server', () => {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const namespace = 'runbook-automation';
  const kubectl = (...args: string[]) => execFileSync(env.TESTBED_KUBECTL!, ['--kubeconfig', env.TESTBED_KUBECONFIG_ADMIN!, ...args], { encoding: 'utf8' });

  test('the sandbox overlay: the worker and bridge Deployments (0 replicas), PDB, ConfigMap, Service and NetworkPolicies are live', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    for (const name of ['runbook-worker', 'runbook-alert-bridge']) {
      const { body } = await apps.readNamespacedDeployment(name, namespace);
      expect([name, body.spec?.replicas]).toEqual([name, 0]);
      expect(body.spec?.template.spec?.containers[0]?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    }
    expect((await kc.makeApiClient(PolicyV1Api).readNamespacedPodDisruptionBudget('runbook-worker', namespace)).body.spec?.minAvailable).toBe(1);
    expect((await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap('runbook-worker-config', namespace)).body.data?.WORKER_HEALTH_LISTEN).toBe('0.0.0.0:8080');
    const policies = (await kc.makeApiClient(NetworkingV1Api).listNamespacedNetworkPolicy(namespace)).body.items.map((p) => p.metadata?.name).sort();
    expect(policies).toEqual(['default-deny', 'runbook-alert-bridge', 'runbook-worker']);
  });

  test('the production overlay is accepted by the API server (server-side dry run), with its extra target namespace present', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const staging = 'short-drama-staging';
    const phase = () =>
      core.readNamespace(staging).then(
        ({ body }) => body.status?.phase,
        () => 'absent',
      );
    // An earlier run's copy may still be terminating: it cannot take new objects until it is gone.
    await waitUntil(`namespace ${staging} active or gone`, async () => (await phase()) !== 'Terminating', 120_000);
    const existed = (await phase()) === 'Active';
    if (!existed) await core.createNamespace({ metadata: { name: staging, labels: { 'runbook-testbed/scratch': 'true' } } });
    try {
      const out = kubectl('apply', '--server-side', '--force-conflicts', '--dry-run=server', '--field-manager', 'deploy-test', '-k', join(__dirname, '..', 'deploy/kubernetes/overlays/production'));
      expect(out).toMatch(/deployment\.apps\/runbook-worker serverside-applied \(server dry run\)/);
      expect(out).toMatch(/rolebinding\.rbac\.authorization\.k8s\.io\/runbook-worker serverside-applied \(server dry run\)/);
      // Nothing was applied: the worker still runs the sandbox's image and Temporal address.
      const { body } = await core.readNamespacedConfigMap('runbook-worker-config', namespace);
      expect(body.data?.TEMPORAL_ADDRESS).toBe('temporal-frontend.temporal.svc:7233');
    } finally {
      if (!existed) await core.deleteNamespace(staging);
    }
  });
});
