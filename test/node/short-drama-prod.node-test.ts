import { AppsV1Api, CoreV1Api, PatchUtils, type V1Pod } from '@kubernetes/client-node';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { applyObjects } from '../../scripts/testbed/kubernetes-apply';
import { appDeployment, appReleases, seedAppReleases } from '../../scripts/testbed/kubernetes-seed';
import { waitUntil } from '../../scripts/testbed/processes';
import { nodeImages } from '../../scripts/testbed/node/node-lifecycle';
import { kubectl } from '../../scripts/testbed/node/node-kubectl';
import { nodeNames } from '../../scripts/testbed/node/node-names';
import { prodNodePorts } from '../../scripts/testbed/node/node-prod';
import type { DbConnectionExhaustionResult } from '../../workflows/db-connection-exhaustion';
import type { DiskPressureResult } from '../../workflows/disk-pressure';
import type { EmergencyScaleResult } from '../../workflows/emergency-scale';
import type { PostIncidentReviewResult } from '../../workflows/post-incident-review';
import type { PodCrashLoopResult } from '../../workflows/pod-crash-loop';
import type { RollbackDeploymentResult } from '../../workflows/rollback-deployment';
import type { RedisMemoryPressureResult } from '../../workflows/redis-memory-pressure';
import type { RotateDatabasePasswordResult } from '../../workflows/rotate-database-password';
import { seedShortDramaDatabase } from '../../scripts/testbed/seed-postgres';
import { activityHarness } from '../helpers/activity-context';
import { logsIn } from '../helpers/postgres-login';
import { adminKubeConfig, kubernetesNamespace as namespace, layout, waitForRollout } from '../helpers/kube-cluster';
import { patchDeployment } from '../helpers/kube-objects';
import { watchPods } from '../helpers/kube-pods';
import { restartPostgres } from '../helpers/postgres-container';
import { approveEach, pendingOf, readBucketText, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv, unsignedTeam } from '../helpers/testbed';
import { withRunbookClient } from '../helpers/worker';
import { deployWorkerPods, removeWorkerPods, waitForWorkerRollout, workerDeployment, workerPods, workerPodsTaskQueue } from '../../scripts/testbed/node/worker-pods';

// Real containers start, crash and restart in minutes, not seconds.
jest.setTimeout(600_000);

/**
 * The runbooks against short-drama-prod on the real node (TESTBED_REAL_NODE=1): PostgreSQL, Redis
 * and our app run as containers, each fault is induced for real through the app's switches
 * (ConfigMap app-config), and each remedy is checked on the running servers, not on the API
 * objects alone. The worker runs there too, as a team deploys it (issue 16 item 3): the image built
 * from the Dockerfile, two pods of the sandbox overlay's Deployment under its ServiceAccount and
 * RBAC (scripts/testbed/node/worker-pods.ts); this file only starts runs and approves them.
 */
const names = nodeNames(layout);
const app = 'short-drama-app';
const appUrl = `http://${names.nodeIp}:${prodNodePorts[app]}`;
const [oldRelease, seededRelease] = appReleases;
const approvers = JSON.stringify(unsignedTeam);
const config = testbedConfig({ RUNBOOK_APPROVERS: approvers, TEMPORAL_TASK_QUEUE: workerPodsTaskQueue });
const env = testbedEnv();
const kc = adminKubeConfig();
const apps = kc.makeApiClient(AppsV1Api);
const core = kc.makeApiClient(CoreV1Api);
const mergePatch = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH } };
const realNode = () => ({ names, images: nodeImages(layout) });
const runIds = [
  ...[
    'dbConnectionExhaustion/postgres',
    'podCrashLoop/short-drama-app',
    'rollbackDeployment/short-drama-app',
    'rotateDatabasePassword/app-secrets',
    'redisMemoryPressure/redis',
    'emergencyScale/short-drama-app',
    'diskPressure/postgres-pvc',
  ].map((id) => id.replace('/', `/${namespace}/`)),
  ...['postgres', 'short-drama-app', 'app-secrets', 'redis', 'postgres-pvc'].map((target) => `lock/${namespace}/${target}`),
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

/** A worker's identity is <pid>@<hostname>; in a pod the hostname is the pod's name. */
const podOf = (identity: string) => identity.replace(/^\d+@/, '');
const isReady = (pod: V1Pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const livePods = async () => (await appPods()).filter((pod) => !pod.metadata?.deletionTimestamp);

/** The app container's env entry `name` set (a new revision), or with undefined removed, by a strategic merge patch as `kubectl set env` does. */
async function setAppEnv(name: string, entry: Record<string, unknown> | undefined): Promise<void> {
  const env = entry ? [{ name, ...entry }] : [{ name, $patch: 'delete' }];
  await patchDeployment(kc, namespace, app, { spec: { template: { spec: { containers: [{ name: 'app', env }] } } } });
}

/** A command in the running postgres container, as `kubectl exec` runs it. */
const inPostgres = (command: string) => kubectl(layout, ['exec', '-n', namespace, 'deploy/postgres', '--', 'sh', '-c', command]);

/**
 * The app serving through its Service as `healthy` says: after a rollout, kube-proxy reaches the new
 * pods only once the EndpointSlice names exactly the live Ready pods and its rules follow (until then a
 * request may go to a deleted pod, or to no endpoint at all). So: the endpoints match, then five
 * answers in a row are right.
 */
async function waitForAppServing(what: string, healthy: (body: Record<string, string>) => boolean = () => true): Promise<void> {
  await waitUntil(
    what,
    async () => {
      const ready = new Set((await livePods()).filter(isReady).map((pod) => pod.status?.podIP));
      const { body: endpoints } = await core.readNamespacedEndpoints(app, namespace);
      const serving = (endpoints.subsets ?? []).flatMap((subset) => subset.addresses ?? []).map((address) => address.ip);
      if (serving.length !== ready.size || serving.some((ip) => !ready.has(ip))) return false;
      for (let i = 0; i < 5; i++) {
        const answer = await health().catch(() => undefined);
        if (answer?.status !== 200 || !healthy(answer.body)) return false;
      }
      return true;
    },
    60_000,
  );
}

/** The seeded app (release 1.4.2, its limits) back, by the test bed's own server-side apply, rolled out and serving. */
async function restoreSeededApp(): Promise<void> {
  await applyObjects(kc, [appDeployment(seededRelease, realNode())]);
  await waitForRollout(kc, namespace, app, 180_000);
  await waitForAppServing(`the app to serve healthy at ${seededRelease}`, (body) => body.release === seededRelease);
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
  await deployWorkerPods(layout, () => undefined, { settings: { RUNBOOK_APPROVERS: approvers } });
});

afterAll(async () => {
  await terminateRuns(config.temporal, runIds);
  removeWorkerPods(layout);
});

describe('short-drama-prod on the real node', () => {
  test('the app answers /health through its NodePort with the database and Redis reachable, logged in as its own role (not a superuser) from its pool, a cache in Redis', async () => {
    await waitForRollout(kc, namespace, app);
    await waitForAppServing('the seeded app serving');
    expect(await health()).toEqual({ status: 200, body: { status: 'ok', release: seededRelease, database: 'reachable', redis: 'reachable' } });
    const home = (await (await fetch(appUrl, { signal: AbortSignal.timeout(10_000) })).json()) as { projects: number; cached: boolean };
    expect(home.projects).toBe(200);
    const sessions = await sql<{ usename: string; rolsuper: boolean }>(
      env.TESTBED_POSTGRES_ADMIN_URL!,
      `SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename WHERE a.application_name = 'short-drama-app'`,
    );
    // The pool keeps its warm connections open, never as another role.
    expect(sessions).toEqual([{ usename: 'short_drama_app', rolsuper: false }]);
    expect((await sql<{ rolsuper: boolean }>(env.TESTBED_POSTGRES_ADMIN_URL!, `SELECT rolsuper FROM pg_roles WHERE rolname = 'short_drama_app'`))[0]).toEqual({ rolsuper: false });
    const metrics = await (await fetch(`${appUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    for (const name of ['http_requests_total', 'http_requests_errors_total', 'http_request_duration_seconds_bucket', 'cache_hits_total', 'cache_misses_total', 'database_connections_active']) {
      expect(metrics).toContain(`${name}{app="short-drama-app"`);
    }
    const redis = new Redis(env.TESTBED_REDIS_ADMIN_URL!, { maxRetriesPerRequest: 1 });
    try {
      // The count the page showed is cached, with the time to live the app gave it.
      expect(await redis.get('cache:projects:count')).toBe('200');
      expect(await redis.ttl('cache:projects:count')).toBeGreaterThan(0);
      expect(await redis.config('GET', 'maxmemory')).toEqual(['maxmemory', String(256 * 1024 * 1024)]);
    } finally {
      redis.disconnect();
    }
  });

  test("Prometheus finds the app's pods by Kubernetes service discovery and scrapes the real traffic of the app's users", async () => {
    const query = async (promql: string) => {
      const url = new URL('api/v1/query', `${env.PROMETHEUS_URL}/`);
      url.searchParams.set('query', promql);
      const body = (await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      return body.data.result;
    };
    const running = async () =>
      (await core.listNamespacedPod(namespace, undefined, undefined, undefined, 'status.phase=Running', `app=${app}`)).body.items
        .filter((p) => !p.metadata?.deletionTimestamp)
        .map((p) => p.metadata!.name!);
    // One target per Running pod, up, labelled with its namespace and pod (a replaced pod drops out).
    await waitUntil(
      "Prometheus' targets of job short-drama-app to be the app's Running pods, each up",
      async () => {
        const targets = await query('up{job="short-drama-app"}');
        const pods = (await running()).sort();
        return JSON.stringify(targets.map((t) => [t.metric.namespace, t.metric.pod, t.value[1]]).sort()) === JSON.stringify(pods.map((pod) => [namespace, pod, '1']));
      },
      60_000,
    );
    // The users' requests (app-traffic.js, through the NodePort) are counted by the pods themselves.
    const traffic = (await (await fetch(`${env.TESTBED_APP_TRAFFIC_URL}/healthz`, { signal: AbortSignal.timeout(5000) })).json()) as { answered: Record<string, number>; signedIn: boolean };
    expect(traffic.answered['200']).toBeGreaterThan(0);
    expect(traffic.signedIn).toBe(true);
    await waitUntil('a request rate from the real traffic', async () => Number((await query('sum(rate(http_requests_total{job="short-drama-app"}[10s]))'))[0]?.value[1] ?? 0) > 1, 30_000);
  });

  test("execInPod in the app's container through the real kubelet, as the worker's account: exit codes from the runtime, and a command the image lacks says so", async () => {
    const h = activityHarness();
    try {
      const run = (command: string[]) => h.run('execInPod', { namespace, deployment: app, command });
      expect(await run(['python3', '-c', 'print("hello")'])).toMatchObject({ exitCode: 0, stdout: 'hello\n', timedOut: false });
      expect(await run(['python3', '-c', 'import sys; print("oops", file=sys.stderr); sys.exit(3)'])).toMatchObject({ exitCode: 3, stderr: 'oops\n' });
      // A command the image lacks: the runtime cannot start it, and the result says why instead of a bare null.
      const missing = await run(['kubectl', 'version']);
      expect(missing).toMatchObject({ exitCode: null, stdout: '', timedOut: false, error: expect.stringContaining('executable file not found') });
    } finally {
      await h.close();
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
      const pods = await watchPods(kc, namespace, 'app=postgres');
      await waitUntil('the pod watch to see the running server', () => pods.seenRunning().length === 1, 10_000);
      const result = await withRunbookClient(config, async ({ runbooks }) => {
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
      await restartPostgres(kc, adminUrl);
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
      // Right after a crash the kubelet names the just-killed instance as current and, as previous, one its
      // garbage collector has removed: `kubectl logs --previous` answers "unable to retrieve container logs".
      // getContainerLogs(previous) then returns the just-killed instance's log.
      let crashed = '';
      await waitUntil(
        "the kubelet's window after a crash, where the previous instance is already removed",
        async () => {
          for (const pod of await livePods()) {
            const status = pod.status?.containerStatuses?.[0];
            if (!status?.state?.terminated || (status.restartCount ?? 0) < 2) continue;
            const { body } = await core.readNamespacedPodLog(pod.metadata!.name!, namespace, 'app', false, undefined, undefined, undefined, true);
            if (String(body).startsWith('unable to retrieve container logs for')) crashed = pod.metadata!.name!;
          }
          return crashed !== '';
        },
        180_000,
      );
      const h = activityHarness();
      try {
        const logs = await h.run('getContainerLogs', { namespace, pod: crashed, container: 'app', previous: true });
        expect(logs.text).toContain('allocating 600 MiB (ALLOCATE_MEMORY_MIB)');
      } finally {
        await h.close();
      }
      // The evidence an SRE looks at first: a killed instance's own log, as its pod's previous container or,
      // in that window, as the current (ended) one.
      const review = await withRunbookClient(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('postIncidentReview', { sinceMinutes: 15, incidentId: `node-oom-${Date.now()}` }, { startedBy: 'erin' });
        return runbooks.waitForResult<PostIncidentReviewResult>(workflowId);
      });
      expect(review.outcome).toBe('planned'); // it only reads and writes evidence
      const appLogs = review.evidence.filter((e) => /\/app-logs\/short-drama-app-[^/]+\/app(\.previous)?\.log$/.test(e.key));
      const texts = await Promise.all(appLogs.map((e) => readBucketText(e.key)));
      expect(texts.filter((t) => t.includes('allocating 600 MiB (ALLOCATE_MEMORY_MIB)')).length).toBeGreaterThan(0);
      const result = await withRunbookClient(config, async ({ runbooks }) => {
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
      await waitForAppServing('the app serving healthy at 768Mi');
    } finally {
      await setAppSwitches({ ALLOCATE_MEMORY_MIB: undefined });
      await restoreSeededApp();
    }
  });

  test('podCrashLoop on a key missing from ConfigMap app-config (the kubelet refuses the container): names the key, changes nothing, the old pods serve on', async () => {
    const key = 'FEATURE_FLAGS';
    await waitForRollout(kc, namespace, app, 180_000);
    await setAppEnv(key, { valueFrom: { configMapKeyRef: { name: 'app-config', key } } });
    try {
      await waitUntil(
        "the kubelet's CreateContainerConfigError for the missing key",
        async () => (await appPods()).some((pod) => pod.status?.containerStatuses?.some((c) => c.state?.waiting?.reason === 'CreateContainerConfigError')),
        60_000,
      );
      const template = JSON.stringify((await apps.readNamespacedDeployment(app, namespace)).body.spec!.template);
      const result = await withRunbookClient(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: app, mode: 'execute' }, { startedBy: 'erin' });
        return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
      });
      expect(result).toMatchObject({ outcome: 'nothing-to-do', cause: 'config-error', missing: `key ${key} in ConfigMap ${namespace}/app-config` });
      expect(result.plan.filter((p) => p.change.needed)).toEqual([]);
      expect(JSON.stringify((await apps.readNamespacedDeployment(app, namespace)).body.spec!.template)).toBe(template);
      await waitForAppServing('the old pods serving on');
    } finally {
      await setAppEnv(key, undefined);
      await restoreSeededApp();
    }
  });

  test('podCrashLoop on a release that exits for a missing config key (CrashLoopBackOff): rolls back to the revision before, its pods Ready, /health 200', async () => {
    await waitForRollout(kc, namespace, app, 180_000);
    const { body: good } = await apps.readNamespacedDeployment(app, namespace);
    const goodRevision = Number(good.metadata!.annotations!['deployment.kubernetes.io/revision']);
    await setAppEnv('REQUIRED_CONFIG', { value: 'PAYMENT_GATEWAY_URL' });
    try {
      await waitUntil(
        'the new release to crash and restart',
        async () => (await appPods()).some((pod) => pod.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0 && c.lastState?.terminated?.exitCode === 1)),
        120_000,
      );
      const result = await withRunbookClient(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: app, mode: 'execute' }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['rollback']);
        return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
      });
      expect(result).toMatchObject({ outcome: 'completed', cause: 'code-error', rollbackToRevision: goodRevision });
      // Read from the crashed container's previous log, as the kubelet keeps it.
      expect(result.timeline.find((e) => e.stepId === 'previous-logs')?.detail).toMatch(/\b[1-9]\d* error lines of/);
      await waitForRollout(kc, namespace, app, 120_000);
      const pods = await livePods();
      expect(pods.map((pod) => [isReady(pod), pod.spec!.containers[0]!.env?.some((e) => e.name === 'REQUIRED_CONFIG')])).toEqual([
        [true, false],
        [true, false],
      ]);
      await waitForAppServing(`the app serving healthy at ${seededRelease} again`, (body) => body.release === seededRelease);
    } finally {
      await setAppEnv('REQUIRED_CONFIG', undefined);
      await restoreSeededApp();
    }
  });

  test('emergencyScale to 3 replicas: the new pod starts for real and is Ready behind the Service; restore puts back 2', async () => {
    await waitForRollout(kc, namespace, app, 180_000);
    try {
      const scaled = await withRunbookClient(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('emergencyScale', { mode: 'execute', replicas: 3 }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['scale']);
        return runbooks.waitForResult<EmergencyScaleResult>(workflowId);
      });
      expect(scaled.outcome).toBe('completed');
      expect(scaled.after).toMatchObject({ replicas: 3, pods: 3, readyPods: 3, ok: true });
      const pods = await livePods();
      expect(pods.map((pod) => [isReady(pod), pod.spec!.nodeName, pod.status!.podIP !== undefined])).toEqual(Array(3).fill([true, names.nodeName, true]));
      await waitForAppServing('the Service routing to the 3 Ready pods');

      const restored = await withRunbookClient(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('emergencyScale', { mode: 'execute', restore: true }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['restore-size']);
        return runbooks.waitForResult<EmergencyScaleResult>(workflowId);
      });
      expect(restored.outcome).toBe('completed');
      expect(restored.after).toMatchObject({ replicas: 2, readyPods: 2, ok: true });
    } finally {
      await patchDeployment(kc, namespace, app, { spec: { replicas: 2 } });
      await restoreSeededApp();
    }
  });

  test('diskPressure in the postgres container: df and du of the real volume, old *.log files deleted by find there, the new one kept', async () => {
    const logDir = 'var/lib/postgresql/data/runbook-node-test-logs';
    inPostgres(
      `rm -rf /${logDir} && mkdir -p /${logDir}/nested && cd /${logDir} && for f in old1.log nested/old2.log kept.txt; do echo line > $f; touch -d '10 days ago' $f; done && echo line > new.log`,
    );
    const backupPrefix = `database/node-test-${Date.now()}/`;
    try {
      const { body: claim } = await core.readNamespacedPersistentVolumeClaim('postgres-pvc', namespace);
      const result = await withRunbookClient(config, async ({ runbooks }) => {
        // expandTo the size it has: the seeded claim is never grown by a test (a claim cannot shrink back).
        const input = { mode: 'execute' as const, dataDir: 'var/lib/postgresql/data', logDir, backupPrefix, expandTo: claim.spec!.resources!.requests!.storage! };
        const { workflowId } = await runbooks.startRunbook('diskPressure', input, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['delete-old-logs']);
        return runbooks.waitForResult<DiskPressureResult>(workflowId);
      });
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([['delete-old-logs', expect.stringMatching(/^deleted 2 \*\.log files/)]]);
      // df of the volume as the container sees it, and du of PostgreSQL's own data folders.
      expect(result.before.disk.df).toMatch(/\s\d+%\s+\/var\/lib\/postgresql\/data$/);
      expect(result.before.disk.usePercent).toBeGreaterThan(0);
      expect(result.before.disk.largest.map((d) => d.path)).toEqual(expect.arrayContaining(['var/lib/postgresql/data/pgdata'])); // PGDATA, initdb's folder on the volume
      expect(result.after?.oldLogs).toBe(0);
      expect(inPostgres(`cd /${logDir} && find . -type f | sort`).trim().split('\n')).toEqual(['./kept.txt', './new.log']);
    } finally {
      inPostgres(`rm -rf /${logDir}`);
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
      const result = await withRunbookClient(config, async ({ runbooks }) => {
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
      await waitForAppServing('the Service to reach only 1.4.1 pods, healthy', (body) => body.release === oldRelease && body.database === 'reachable');
    } finally {
      await restoreSeededApp();
    }
  });
  test("rotateDatabasePassword of the app's role: the app's pods restart with the new password and /health reports the database reachable", async () => {
    const secret = async () => (await core.readNamespacedSecret('app-secrets', namespace)).body.data ?? {};
    const decoded = async (key: string) => Buffer.from((await secret())[key] ?? '', 'base64').toString('utf8');
    const old = await decoded('DATABASE_PASSWORD');
    expect(old).toBe(env.TESTBED_APP_DATABASE_PASSWORD);
    const podsBefore = new Set((await appPods()).map((pod) => pod.metadata!.name!));
    try {
      const result = await withRunbookClient(config, async ({ runbooks }) => {
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
      await waitForAppServing('the restarted app serving with the database reachable', (body) => body.database === 'reachable');
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
      const result = await withRunbookClient(config, async ({ runbooks }) => {
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
      await waitForAppServing('the app serving with the restarted Redis reachable', (body) => body.redis === 'reachable');
    } finally {
      redis.disconnect();
      // The seeded limit back; the restarted server reads maxmemory and policy from its config file again.
      await patchDeployment(kc, namespace, 'redis', { spec: { template: { spec: { containers: [{ name: 'redis', resources: { limits: { memory: '512Mi' } } }] } } } });
      await waitForRollout(kc, namespace, 'redis', 120_000);
      await restoreSeededApp();
    }
  });

  test('the worker pods (issue 16 item 5): a rolling update of the worker while two runs wait for approval loses neither; the pod running a step deleted with --grace-period=0, the other finishes it, one scale and the end state asked for', async () => {
    const secretVersion = async () => (await core.readNamespacedSecret('app-secrets', namespace)).body.metadata!.resourceVersion;
    const secretBefore = await secretVersion();
    // minReadySeconds holds the scale step's rollout wait open for 20 s: time to find the pod running it.
    await patchDeployment(kc, namespace, app, { spec: { minReadySeconds: 20 } });
    await waitForRollout(kc, namespace, app, 180_000);
    try {
      await withRunbookClient(config, async ({ runbooks, client }) => {
        const scale = await runbooks.startRunbook('emergencyScale', { mode: 'execute', replicas: 3 }, { startedBy: 'erin' });
        const rotate = await runbooks.startRunbook('rotateDatabasePassword', { mode: 'execute', role: 'short_drama_app' }, { startedBy: 'erin' });
        const scalePlan = await pendingOf(runbooks, scale.workflowId, 'scale');
        const rotatePlan = await pendingOf(runbooks, rotate.workflowId, 'rotate-password');

        // A new version of the worker rolls out (maxSurge 1, maxUnavailable 0) while both wait.
        const before = new Set(workerPods(layout));
        kubectl(layout, ['-n', 'runbook-automation', 'rollout', 'restart', `deployment/${workerDeployment}`]);
        await waitForWorkerRollout(layout);
        await waitUntil('the old worker pods gone', () => workerPods(layout).every((pod) => !before.has(pod)), 120_000);
        await runbooks.reject(rotate.workflowId, { stepId: 'rotate-password', planHash: rotatePlan.planHash, approver: 'bob', reason: 'not tonight' });
        await runbooks.approve(scale.workflowId, { stepId: 'scale', planHash: scalePlan.planHash, approver: 'bob', reason: 'approve scale' });

        // The pod whose worker runs the rollout wait goes, at once: no SIGTERM, no graceful shutdown.
        let victim = '';
        await waitUntil(
          'a worker pod running the scale step',
          async () => {
            const { raw } = await client.workflow.getHandle(scale.workflowId).describe();
            const running = raw.pendingActivities?.find((a) => a.activityType?.name === 'waitForRolloutComplete' && a.lastWorkerIdentity);
            victim = running?.lastWorkerIdentity ? podOf(running.lastWorkerIdentity) : '';
            return victim !== '';
          },
          60_000,
        );
        expect(workerPods(layout)).toContain(victim);
        kubectl(layout, ['-n', 'runbook-automation', 'delete', 'pod', victim, '--grace-period=0', '--force']);

        const scaled = await runbooks.waitForResult<EmergencyScaleResult>(scale.workflowId);
        expect(scaled.outcome).toBe('completed');
        expect(scaled.after).toMatchObject({ replicas: 3, readyPods: 3, ok: true });
        const rejected = await runbooks.waitForResult<RotateDatabasePasswordResult>(rotate.workflowId);
        expect(rejected.outcome).toBe('rejected');
        expect(await secretVersion()).toBe(secretBefore);

        // One scale, and the wait finished by the other pod after the lost one's heartbeat timed out.
        const events = (await client.workflow.getHandle(scale.workflowId).fetchHistory()).events ?? [];
        const scheduled = new Map(
          events
            .filter((e) => e.activityTaskScheduledEventAttributes)
            .map((e) => {
              const { activityType, input } = e.activityTaskScheduledEventAttributes!;
              const args = JSON.parse(Buffer.from(input!.payloads![0]!.data!).toString('utf8')) as { dryRun?: boolean };
              return [String(e.eventId), `${activityType!.name!}${args.dryRun ? ' (dry run)' : ''}`];
            }),
        );
        const started = (type: string) =>
          events
            .filter((e) => e.activityTaskStartedEventAttributes && scheduled.get(String(e.activityTaskStartedEventAttributes.scheduledEventId)) === type)
            .map((e) => podOf(e.activityTaskStartedEventAttributes!.identity!));
        expect(started('scaleDeployment')).toHaveLength(1);
        const waits = started('waitForRolloutComplete');
        expect(waits.length).toBeGreaterThanOrEqual(2);
        expect(waits).toContain(victim);
        expect(waits.at(-1)).not.toBe(victim);
        expect(events.some((e) => e.activityTaskTimedOutEventAttributes)).toBe(true);

        // The size and the HPA's bounds from before (else the HPA keeps 3 pods for the next tests).
        const restore = await runbooks.startRunbook('emergencyScale', { mode: 'execute', restore: true }, { startedBy: 'erin' });
        await approveEach(runbooks, restore.workflowId, ['restore-size']);
        expect((await runbooks.waitForResult<EmergencyScaleResult>(restore.workflowId)).after).toMatchObject({ replicas: 2, ok: true });
      });
      await waitForWorkerRollout(layout);
    } finally {
      await patchDeployment(kc, namespace, app, { spec: { minReadySeconds: 0 } });
      await restoreSeededApp();
    }
  });
});
