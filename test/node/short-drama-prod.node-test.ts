import { AppsV1Api, CoreV1Api, PatchUtils, type V1Pod } from '@kubernetes/client-node';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { applyObjects } from '../../scripts/testbed/kubernetes-apply';
import { appDeployment, appReleases, seedAppReleases } from '../../scripts/testbed/kubernetes-seed';
import { waitUntil } from '../../scripts/testbed/processes';
import { nodeImages } from '../../scripts/testbed/node/node-lifecycle';
import { nodeNames } from '../../scripts/testbed/node/node-names';
import { prodNodePorts } from '../../scripts/testbed/node/node-prod';
import type { DbConnectionExhaustionResult } from '../../workflows/db-connection-exhaustion';
import type { PodCrashLoopResult } from '../../workflows/pod-crash-loop';
import type { RollbackDeploymentResult } from '../../workflows/rollback-deployment';
import type { RedisMemoryPressureResult } from '../../workflows/redis-memory-pressure';
import type { RotateDatabasePasswordResult } from '../../workflows/rotate-database-password';
import { seedShortDramaDatabase } from '../../scripts/testbed/seed-postgres';
import { logsIn } from '../helpers/postgres-login';
import { adminKubeConfig, kubernetesNamespace as namespace, layout, waitForRollout } from '../helpers/kube-cluster';
import { patchDeployment } from '../helpers/kube-objects';
import { approveEach, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv, unsignedTeam } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { watchRunningPods } from './postgres-on-node';

/**
 * The runbooks against short-drama-prod on the real node (TESTBED_REAL_NODE=1): PostgreSQL, Redis
 * and our app run as containers, each fault is induced for real through the app's switches
 * (ConfigMap app-config), and each remedy is checked on the running servers, not on the API
 * objects alone. The worker reaches them as the env file says: NodePorts on the node address.
 */
const names = nodeNames(layout);
const app = 'short-drama-app';
const appUrl = `http://${names.nodeIp}:${prodNodePorts[app]}`;
const [oldRelease, seededRelease] = appReleases;
const config = testbedConfig({ RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam) });
const env = testbedEnv();
const kc = adminKubeConfig();
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const mergePatch = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH } };
const realNode = () => ({ names, images: nodeImages(layout) });
const runIds = [
  ...['dbConnectionExhaustion/postgres', 'podCrashLoop/short-drama-app', 'rollbackDeployment/short-drama-app', 'rotateDatabasePassword/app-secrets', 'redisMemoryPressure/redis'].map((id) =>
    id.replace('/', `/${namespace}/`),
  ),
  ...['postgres', 'short-drama-app', 'app-secrets', 'redis'].map((target) => `lock/${namespace}/${target}`),
];

async function health(): Promise<{ status: number; body: Record<string, string> }> {
  const response = await fetch(`${appUrl}/health`, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

async function sql<T extends Record<string, unknown>>(url: string, text: string): Promise<T[]> {
  const client = new PgClient({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

/** Sets (or with undefined removes) the app's switches in ConfigMap app-config, then restarts the app as `kubectl rollout restart` does. */
async function setAppSwitches(switches: Record<string, string | undefined>): Promise<void> {
  await core.patchNamespacedConfigMap(
    'app-config',
    namespace,
    { data: Object.fromEntries(Object.entries(switches).map(([k, v]) => [k, v ?? null])) },
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    mergePatch,
  );
  await patchDeployment(kc, namespace, app, { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } });
}

async function appPods(): Promise<V1Pod[]> {
  return (await core.listNamespacedPod(namespace, undefined, undefined, undefined, undefined, `app=${app}`)).body.items;
}

const isReady = (pod: V1Pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** The seeded app (release 1.4.2, its limits) back, by the test bed's own server-side apply, rolled out and healthy. */
async function restoreSeededApp(): Promise<void> {
  await applyObjects(kc, [appDeployment(seededRelease, realNode())]);
  await waitForRollout(kc, namespace, app, 180_000);
  await waitUntil(
    `the app to report healthy at ${seededRelease}`,
    async () => {
      const answer = await health().catch(() => undefined);
      return answer?.status === 200 && answer.body.release === seededRelease;
    },
    60_000,
  );
}

beforeAll(async () => {
  const { body: node } = await core.readNode(names.nodeName).catch(() => ({ body: undefined }));
  if (!node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) {
    throw new Error(
      `the real node ${names.nodeName} is not up (TESTBED_PORT_BASE=${layout.portBase}): start the test bed with TESTBED_REAL_NODE=1 npm run testbed -- up, then run npm run test:node again`,
    );
  }
  if (!env.DATABASE_URL?.includes(`@${names.nodeIp}:`)) {
    throw new Error(`DATABASE_URL in the env file does not point at the real node (${names.nodeIp}): run TESTBED_REAL_NODE=1 npm run testbed -- up`);
  }
  await terminateRuns(config.temporal, runIds);
});

afterAll(() => terminateRuns(config.temporal, runIds));

describe('short-drama-prod on the real node', () => {
  test('the app answers /health through its NodePort with the database and Redis reachable, logged in as its own role (not a superuser), sessions in Redis', async () => {
    await waitForRollout(kc, namespace, app);
    expect(await health()).toEqual({ status: 200, body: { status: 'ok', release: seededRelease, database: 'reachable', redis: 'reachable' } });
    const home = (await (await fetch(appUrl, { signal: AbortSignal.timeout(10_000) })).json()) as { projects: number; session: string };
    expect(home.projects).toBe(200);
    const sessions = await sql<{ usename: string; rolsuper: boolean }>(
      env.TESTBED_POSTGRES_ADMIN_URL!,
      `SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename WHERE a.application_name = 'short-drama-app'`,
    );
    // The app's sessions are short: one may or may not be open right now, but never as another role.
    for (const session of sessions) expect(session).toEqual({ usename: 'short_drama_app', rolsuper: false });
    expect((await sql<{ rolsuper: boolean }>(env.TESTBED_POSTGRES_ADMIN_URL!, `SELECT rolsuper FROM pg_roles WHERE rolname = 'short_drama_app'`))[0]).toEqual({ rolsuper: false });
    const metrics = await (await fetch(`${appUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    for (const name of ['http_requests_total', 'http_requests_errors_total', 'http_request_duration_seconds_bucket', 'cache_hits_total', 'cache_misses_total', 'database_connections_active']) {
      expect(metrics).toContain(`${name}{app="short-drama-app"`);
    }
    expect(home.session).toMatch(/^session:/);
    const redis = new Redis(env.TESTBED_REDIS_ADMIN_URL!, { maxRetriesPerRequest: 1 });
    try {
      expect(await redis.exists(home.session)).toBe(1);
      expect(await redis.config('GET', 'maxmemory')).toEqual(['maxmemory', String(256 * 1024 * 1024)]);
    } finally {
      redis.disconnect();
    }
  });

  test('dbConnectionExhaustion on leaked connections: completes, SHOW max_connections on the pod then returns 150, never two postgres pods at once', async () => {
    const adminUrl = env.DATABASE_URL!;
    expect((await sql<{ max_connections: string }>(adminUrl, 'SHOW max_connections'))[0]).toEqual({ max_connections: '100' });
    await setAppSwitches({ LEAK_CONNECTIONS: '10' });
    try {
      await waitForRollout(kc, namespace, app, 180_000);
      await waitUntil(
        "the app's leaked idle sessions",
        async () => Number((await sql<{ n: string }>(adminUrl, `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'short-drama-app' AND state = 'idle'`))[0]!.n) >= 20,
        60_000,
      );
      // Running servers, by phase: a stopped pod's object stays (phase Failed) until it is deleted, and Recreate need not wait for that.
      const pods = watchRunningPods(layout, namespace, 'app=postgres');
      await waitUntil('the pod watch to see the running server', () => pods.seenRunning().length === 1, 10_000);
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections', 'restart-database']);
        return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
      }).finally(pods.stop);
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['terminate-idle', 'raise-max-connections', 'restart-database']);
      expect((result.plan[0]!.change.observed as { matching: number }).matching).toBeGreaterThanOrEqual(20);
      // The running server's value, after a real restart of PostgreSQL on its volume.
      expect((await sql<{ max_connections: string }>(adminUrl, 'SHOW max_connections'))[0]).toEqual({ max_connections: '150' });
      expect(pods.seenRunning()).toHaveLength(2);
      expect(pods.maxRunning()).toBe(1);
    } finally {
      await setAppSwitches({ LEAK_CONNECTIONS: undefined });
      await sql(adminUrl, 'ALTER SYSTEM RESET max_connections');
      await patchDeployment(kc, namespace, 'postgres', { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } });
      await waitForRollout(kc, namespace, 'postgres', 180_000);
      await restoreSeededApp();
    }
    expect((await sql<{ max_connections: string }>(adminUrl, 'SHOW max_connections'))[0]).toEqual({ max_connections: '100' });
  });

  test('podCrashLoop on a real OOMKill of the app: the memory limit is raised, the new pods hold their memory and stay Ready', async () => {
    // 600 MiB in a 512Mi container: the kernel kills it; ×1.5 = 768Mi holds it.
    await setAppSwitches({ ALLOCATE_MEMORY_MIB: '600' });
    try {
      await waitUntil(
        'a real OOMKill of an app container',
        async () => (await appPods()).some((pod) => pod.status?.containerStatuses?.some((c) => c.lastState?.terminated?.reason === 'OOMKilled')),
        120_000,
      );
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: app, mode: 'execute' }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['raise-memory-limit']);
        return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
      });
      expect(result.cause).toBe('oom-killed');
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
        ['raise-memory-limit', expect.stringMatching(/limits\.memory 512Mi -> 768Mi; rollout complete/)],
      ]);
      const { body } = await apps.readNamespacedDeployment(app, namespace);
      expect(body.spec!.template.spec!.containers[0]!.resources?.limits?.memory).toBe('768Mi');
      // Every pod now runs the new template, holds its 600 MiB (allocated before it listens) and is Ready, never killed.
      await waitForRollout(kc, namespace, app, 60_000);
      const pods = (await appPods()).filter((pod) => !pod.metadata?.deletionTimestamp);
      expect(pods).toHaveLength(2);
      for (const pod of pods) {
        expect(pod.spec!.containers[0]!.resources?.limits?.memory).toBe('768Mi');
        expect({ ready: isReady(pod), restarts: pod.status?.containerStatuses?.[0]?.restartCount }).toEqual({ ready: true, restarts: 0 });
      }
      expect((await health()).status).toBe(200);
    } finally {
      await setAppSwitches({ ALLOCATE_MEMORY_MIB: undefined });
      await restoreSeededApp();
    }
  });

  test('rollbackDeployment back to the 1.4.1 image: the pods run that image, Ready, and the app reports that release', async () => {
    const images = nodeImages(layout);
    await seedAppReleases(kc, realNode()); // as `up` does: earlier tests' rollouts may have pruned the 1.4.1 revision
    await waitForRollout(kc, namespace, app, 180_000);
    const { body: sets } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${app}`);
    const old = sets.items.find((rs) => rs.spec?.template?.spec?.containers[0]?.image === images[`${app}:${oldRelease}`]);
    if (!old) throw new Error(`no ReplicaSet of ${app} runs ${images[`${app}:${oldRelease}`]}: the seed makes one the first time`);
    const toRevision = Number(old.metadata!.annotations!['deployment.kubernetes.io/revision']);
    try {
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('rollbackDeployment', { mode: 'execute', toRevision }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['rollback']);
        return runbooks.waitForResult<RollbackDeploymentResult>(workflowId);
      });
      expect(result.outcome).toBe('completed');
      expect(result.after).toMatchObject({ images: [`app=${images[`${app}:${oldRelease}`]}`], pods: 2, readyPods: 2, available: true });
      const pods = (await appPods()).filter((pod) => !pod.metadata?.deletionTimestamp);
      expect(pods.map((pod) => [pod.spec!.containers[0]!.image, isReady(pod)])).toEqual([
        [images[`${app}:${oldRelease}`], true],
        [images[`${app}:${oldRelease}`], true],
      ]);
      await waitUntil('the Service to reach only 1.4.1 pods', async () => (await health()).body.release === oldRelease, 30_000);
      expect((await health()).body).toMatchObject({ status: 'ok', release: oldRelease, database: 'reachable' });
    } finally {
      await restoreSeededApp();
    }
    expect((await health()).body.release).toBe(seededRelease);
  });
  test("rotateDatabasePassword of the app's role: the app's pods restart with the new password and /health reports the database reachable", async () => {
    const secret = async () => (await core.readNamespacedSecret('app-secrets', namespace)).body.data ?? {};
    const decoded = async (key: string) => Buffer.from((await secret())[key] ?? '', 'base64').toString('utf8');
    const old = await decoded('DATABASE_PASSWORD');
    expect(old).toBe(env.TESTBED_APP_DATABASE_PASSWORD);
    const podsBefore = new Set((await appPods()).map((pod) => pod.metadata!.name!));
    try {
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', role: 'short_drama_app' }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['rotate-password']);
        return runbooks.waitForResult<RotateDatabasePasswordResult>(workflowId);
      });
      expect(result.outcome).toBe('completed');
      expect(result.rotated).toBe(true);
      const next = await decoded('DATABASE_PASSWORD');
      expect(next).not.toBe(old);
      expect(await logsIn('short_drama_app', next)).toBe(true);
      expect(await logsIn('short_drama_app', old)).toBe(false);
      // Restarted: none of the pods from before is serving, and the new ones log in with the new password.
      await waitForRollout(kc, namespace, app, 60_000);
      const podsAfter = (await appPods()).filter((pod) => !pod.metadata?.deletionTimestamp);
      expect(podsAfter.filter((pod) => podsBefore.has(pod.metadata!.name!))).toEqual([]);
      expect(podsAfter.every(isReady)).toBe(true);
      expect(await health()).toMatchObject({ status: 200, body: { database: 'reachable' } });
    } finally {
      // The seeded password back in the role and the Secret (as the next `up` would do), then the app restarted with it.
      await seedShortDramaDatabase(env.TESTBED_POSTGRES_ADMIN_URL!, 'short_drama_prod', env.TESTBED_APP_DATABASE_PASSWORD!);
      const data = { DATABASE_PASSWORD: Buffer.from(old).toString('base64'), DATABASE_PASSWORD_NEXT: null, DATABASE_PASSWORD_PREVIOUS: null };
      await core.patchNamespacedSecret('app-secrets', namespace, { data }, undefined, undefined, undefined, undefined, undefined, mergePatch);
      await setAppSwitches({});
      await restoreSeededApp();
    }
  });
  test('redisMemoryPressure against Redis in its pod at its real maxmemory: session keys gone, the pod restarted with the raised limit, maxmemory and policy set on the new server', async () => {
    const redis = new Redis(env.TESTBED_REDIS_ADMIN_URL!, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined); // the server restarts during the run
    const value = 'x'.repeat(64 * 1024);
    try {
      // 2000 sessions of 64 KiB: about half of the pod's maxmemory 256mb, for real.
      for (let batch = 0; batch < 20; batch++) {
        const pipeline = redis.pipeline();
        for (let i = 0; i < 100; i++) pipeline.set(`session:node-test-${batch * 100 + i}`, value);
        await pipeline.exec();
      }
      const usedBefore = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
      expect(usedBefore).toBeGreaterThan(100 * 1024 * 1024);
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('redisMemoryPressure', { mode: 'execute', raiseWhenUsageAbove: 0 }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['delete-session-keys', 'raise-memory-limit', 'raise-maxmemory', 'set-maxmemory-policy']);
        return runbooks.waitForResult<RedisMemoryPressureResult>(workflowId);
      });
      expect(result.outcome).toBe('completed');
      // The running pod (a new one: the limit change restarted Redis) and the server in it.
      await waitForRollout(kc, namespace, 'redis', 60_000);
      const pods = (await core.listNamespacedPod(namespace, undefined, undefined, undefined, undefined, 'app=redis')).body.items.filter((pod) => !pod.metadata?.deletionTimestamp);
      expect(pods.map((pod) => [pod.spec!.containers[0]!.resources?.limits?.memory, isReady(pod)])).toEqual([['768Mi', true]]);
      const fresh = new Redis(env.TESTBED_REDIS_ADMIN_URL!, { maxRetriesPerRequest: 1 });
      try {
        expect(await fresh.config('GET', 'maxmemory')).toEqual(['maxmemory', String(384 * 1024 * 1024)]);
        expect(await fresh.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'allkeys-lru']);
        expect(await fresh.keys('session:node-test-*')).toEqual([]);
      } finally {
        fresh.disconnect();
      }
      expect(await health()).toMatchObject({ status: 200, body: { redis: 'reachable' } });
    } finally {
      redis.disconnect();
      // The seeded limit back; the restarted server reads maxmemory and policy from its config file again.
      await patchDeployment(kc, namespace, 'redis', { spec: { template: { spec: { containers: [{ name: 'redis', resources: { limits: { memory: '512Mi' } } }] } } } });
      await waitForRollout(kc, namespace, 'redis', 120_000);
      await restoreSeededApp();
    }
  });
});
