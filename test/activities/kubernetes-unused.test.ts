import { AppsV1Api, CoreV1Api, PatchUtils } from '@kubernetes/client-node';
import { patchDeployment } from '../helpers/kube-objects';
import { waitUntil } from '../../scripts/testbed/processes';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { failureOf } from '../helpers/failures';
import { deleteBoundClaim, deleteDeployment, restartableScript, scratchApp, scratchBoundClaim, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as ns, statusOf, waitForRollout } from '../helpers/kube-cluster';
import { testbedEnv } from '../helpers/testbed';

/**
 * listUnusedResources against the test bed's real control plane. Unused objects of our own
 * (unique names, deleted afterwards) must be reported; the seeded, in-use objects of
 * short-drama-prod must not. Other tests may add objects meanwhile, so only ours and the
 * seeded ones are asserted, never totals.
 */
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const mergePatch = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH } };
const ignore404 = (err: unknown) => {
  if (statusOf(err) !== 404) throw err;
};

const claim = unique('ku-claim');
const deployment = unique('ku-zero');
const service = unique('ku-nothing');
let h: ActivityHarness;
const cleanups: Array<() => Promise<unknown>> = [];

/** The Deployment's ReplicaSet of a revision. */
async function replicaSetOfRevision(name: string, revision: number): Promise<string> {
  const { body } = await apps.listNamespacedReplicaSet(ns, undefined, undefined, undefined, undefined, `app=${name}`);
  const rs = body.items.find((r) => r.metadata?.annotations?.['deployment.kubernetes.io/revision'] === String(revision));
  if (!rs?.metadata?.name) throw new Error(`no ReplicaSet of ${name} at revision ${revision}`);
  return rs.metadata.name;
}

beforeAll(async () => {
  h = activityHarness();
  cleanups.push(() => deleteBoundClaim(kc, claim));
  await scratchBoundClaim(kc, claim, 'fixed');
  cleanups.push(() => core.deleteNamespacedService(service, ns).catch(ignore404));
  // Selects a label no pod has: the Service routes nowhere.
  await core.createNamespacedService(ns, { metadata: { name: service }, spec: { selector: { app: unique('no-such-pod') }, ports: [{ port: 80, targetPort: 8080 }] } });
  cleanups.push(() => deleteDeployment(kc, deployment));
  await scratchApp(kc, deployment, { script: restartableScript() });
  // Revision 2 mounts the claim, so revision 1's ReplicaSet is old and the claim is in use while a pod runs.
  await patchDeployment(kc, ns, deployment, { spec: { template: { spec: { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }] } } } });
  await waitForRollout(kc, ns, deployment);
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await h?.close();
});

describe('listUnusedResources (monthly review: unused resources)', () => {
  test('while a pod mounts the claim it is in use; the old ReplicaSet of revision 1 is listed, the current one not', async () => {
    const result = await h.run('listUnusedResources', { namespace: ns });
    expect(result.unmountedClaims.map((c) => c.name)).not.toContain(claim);
    expect(result.scaledToZeroDeployments.map((d) => d.name)).not.toContain(deployment);
    expect(result.oldReplicaSets.find((d) => d.deployment === deployment)).toEqual({
      deployment,
      currentRevision: 2,
      count: 1,
      replicaSets: [await replicaSetOfRevision(deployment, 1)],
    });
  });

  test('scaled to 0: the Deployment, its now unmounted claim (naming the Deployment) and the Service selecting nothing are reported', async () => {
    await apps.patchNamespacedDeploymentScale(deployment, ns, { spec: { replicas: 0 } }, undefined, undefined, undefined, undefined, undefined, mergePatch);
    await waitUntil(`pods of ${deployment} gone`, async () => (await core.listNamespacedPod(ns, undefined, undefined, undefined, undefined, `app=${deployment}`)).body.items.length === 0, 60_000);
    const result = await h.run('listUnusedResources', { namespace: ns });

    expect(result.namespace).toBe(ns);
    expect(result.unmountedClaims.find((c) => c.name === claim)).toEqual({
      name: claim,
      phase: 'Bound',
      requested: '1Gi',
      capacity: '1Gi',
      storageClass: 'fixed',
      referencedByDeployments: [deployment],
      createdAt: expect.any(String),
    });
    expect(result.scaledToZeroDeployments).toContainEqual({ name: deployment, createdAt: expect.any(String) });
    expect(result.servicesWithoutReadyEndpoints).toContainEqual({ name: service, type: 'ClusterIP', selector: expect.any(Object), notReadyEndpoints: 0 });
    // Revision 2's ReplicaSet is at 0 replicas now too, but it is the current revision: not old.
    expect(result.oldReplicaSets.find((d) => d.deployment === deployment)?.replicaSets).toEqual([await replicaSetOfRevision(deployment, 1)]);

    // Counts agree with the lists.
    expect(result.counts).toEqual({
      unmountedClaims: result.unmountedClaims.length,
      scaledToZeroDeployments: result.scaledToZeroDeployments.length,
      servicesWithoutReadyEndpoints: result.servicesWithoutReadyEndpoints.length,
      oldReplicaSets: result.oldReplicaSets.reduce((n, d) => n + d.count, 0),
    });
    expect(result.counts.oldReplicaSets).toBeGreaterThanOrEqual(1);

    // The seeded objects are in use.
    expect(result.unmountedClaims.map((c) => c.name)).not.toContain('postgres-pvc');
    expect(result.unmountedClaims.map((c) => c.name)).not.toContain('redis-data');
    expect(result.scaledToZeroDeployments.map((d) => d.name)).not.toContain('short-drama-app');
    expect(result.servicesWithoutReadyEndpoints.map((s) => s.name)).not.toContain('short-drama-app');
    const app = (await apps.readNamespacedDeployment('short-drama-app', ns)).body;
    const currentAppReplicaSet = await replicaSetOfRevision('short-drama-app', Number(app.metadata?.annotations?.['deployment.kubernetes.io/revision']));
    expect(result.oldReplicaSets.flatMap((d) => d.replicaSets)).not.toContain(currentAppReplicaSet);
  });

  test('paged: one LIST per page of each of the six resources, whatever the number of objects', async () => {
    const whole = await h.run('listUnusedResources', { namespace: ns });
    // pods, persistentvolumeclaims, deployments, services, replicasets, endpoints: fewer than 500 each.
    expect(whole.listRequests).toBe(6);
    const paged = await h.run('listUnusedResources', { namespace: ns, pageSize: 1 });
    // One object per page: at least the three seeded objects of each kind plus ours, so far more than six requests.
    expect(paged.listRequests).toBeGreaterThan(6 + 12);
    // Following the continue tokens loses nothing.
    expect(paged.unmountedClaims.map((c) => c.name)).toContain(claim);
    expect(paged.scaledToZeroDeployments.map((d) => d.name)).toContain(deployment);
    expect(paged.servicesWithoutReadyEndpoints.map((s) => s.name)).toContain(service);
    expect(paged.oldReplicaSets.find((d) => d.deployment === deployment)?.count).toBe(1);
  });

  test('reads only: a read-only ServiceAccount can run it', async () => {
    const readonly = activityHarness({ KUBECONFIG: testbedEnv().TESTBED_KUBECONFIG_READONLY });
    try {
      const result = await readonly.run('listUnusedResources', { namespace: ns });
      expect(result.servicesWithoutReadyEndpoints.map((s) => s.name)).toContain(service);
    } finally {
      await readonly.close();
    }
  });

  test('namespaces outside the allowlist are refused before any call; a bad page size is invalid input', async () => {
    const system = await failureOf(h.run('listUnusedResources', { namespace: 'kube-system' }));
    expect(system.type).toBe('Refused');
    expect(system.message).toMatch(/kube-system is never touched/);
    const other = await failureOf(h.run('listUnusedResources', { namespace: 'default' }));
    expect(other.type).toBe('Refused');
    expect(other.message).toMatch(/namespace default is not in the allowlist \(short-drama-prod\)/);
    expect((await failureOf(h.run('listUnusedResources', { namespace: 'Bad_Name' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('listUnusedResources', { namespace: ns, pageSize: 0 }))).message).toMatch(/pageSize must be an integer between 1 and 5000/);
  });
});
