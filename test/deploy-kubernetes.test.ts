import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, NetworkingV1Api, PolicyV1Api, type V1Deployment } from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
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
  const kubectl = (args: string[], input?: string) => execFileSync(env.TESTBED_KUBECTL!, ['--kubeconfig', env.TESTBED_KUBECONFIG_ADMIN!, ...args], { encoding: 'utf8', input });

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
      const out = kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '--field-manager', 'deploy-test', '-k', join(__dirname, '..', 'deploy/kubernetes/overlays/production')]);
      expect(out).toMatch(/deployment\.apps\/runbook-worker serverside-applied \(server dry run\)/);
      expect(out).toMatch(/rolebinding\.rbac\.authorization\.k8s\.io\/runbook-worker serverside-applied \(server dry run\)/);
      // Nothing was applied: the worker still runs the sandbox's image and Temporal address.
      const { body } = await core.readNamespacedConfigMap('runbook-worker-config', namespace);
      expect(body.data?.TEMPORAL_ADDRESS).toBe('temporal-frontend.temporal.svc:7233');
    } finally {
      if (!existed) await core.deleteNamespace(staging);
    }
  });

  test('the versioned production overlay: the worker is a Deployment and a Worker Deployment version per image tag, and the API server accepts it (server-side dry run)', () => {
    const rendered = parseAllDocuments(kubectl(['kustomize', join(__dirname, '..', 'deploy/kubernetes/overlays/production-versioned')])).map((d) => d.toJS() as V1Deployment);
    const workers = rendered.filter((o) => o.kind === 'Deployment' && o.metadata?.labels?.['app.kubernetes.io/name'] === 'runbook-worker');
    expect(workers.map((d) => d.metadata?.name)).toEqual(['runbook-worker-0.1.0']);
    const worker = workers[0]!;
    const container = worker.spec!.template.spec!.containers[0]!;
    expect(container.image).toBe('registry.example.com/sre/runbook-automation:0.1.0');
    expect(container.env).toEqual([
      { name: 'WORKER_DEPLOYMENT_NAME', value: 'runbook-worker' },
      { name: 'WORKER_BUILD_ID', value: '0.1.0' },
    ]);
    // Its own pods only: the next tag's Deployment runs beside it instead of adopting or replacing them.
    expect(worker.spec!.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'runbook-worker', 'runbook-automation/build-id': '0.1.0' });
    expect(worker.spec!.template.metadata?.labels?.['runbook-automation/build-id']).toBe('0.1.0');
    const out = kubectl(['apply', '--server-side', '--dry-run=server', '--field-manager', 'deploy-test', '-f', '-'], stringify(worker));
    expect(out).toMatch(/deployment\.apps\/runbook-worker-0\.1\.0 serverside-applied \(server dry run\)/);
  });
});
