import { randomUUID } from 'node:crypto';
import { CancelledFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { Client as PgClient } from 'pg';
import { waitUntil } from '../../scripts/testbed/processes';
import type { DbConnectionExhaustionResult } from '../../workflows/db-connection-exhaustion';
import type { RunbookClient } from '../../client/runbook-client';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig, kubernetesNamespace } from '../helpers/kube-cluster';
import { seededMaxConnections } from '../helpers/postgres-container';
import { deleteSingleWriter, scratchSingleWriter, unique } from '../helpers/kube-activity-scratch';
import { watchPods, type PodWatch } from '../helpers/kube-pods';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { approveEach, canceledRun, expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';

/** 场景2 against the real PostgreSQL 15 and the real Kubernetes API of the test bed. */
describe('dbConnectionExhaustion', () => {
  const env = testbedEnv();
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify([
      { id: 'bob', roles: ['l2'] },
      { id: 'carol', roles: ['manager'] },
    ]),
  });
  const clients: PgClient[] = [];

  /** Idle sessions (and two busy ones) from a distinct application, as a leaking app would leave them. */
  async function openConnections(app: string, idle: number): Promise<{ busy: Array<Promise<unknown>> }> {
    for (let i = 0; i < idle + 2; i++) {
      const client = new PgClient({ connectionString: env.DATABASE_URL, application_name: app });
      client.on('error', () => undefined); // terminated on purpose
      await client.connect();
      clients.push(client);
    }
    // Busy for longer than a slow run takes (afterEach ends them): they must still be active when counted.
    const busy = clients.slice(-2).map((c) => c.query('SELECT pg_sleep(300)').catch(() => undefined));
    return { busy };
  }

  async function sessions(app: string): Promise<Record<string, number>> {
    const admin = new PgClient({ connectionString: env.DATABASE_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ state: string; n: string }>('SELECT state, count(*) AS n FROM pg_stat_activity WHERE application_name = $1 GROUP BY state', [app]);
      return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    } finally {
      await admin.end();
    }
  }

  /** Sessions of the app idle for longer than the runs' idleOlderThanSeconds (1 s): what a plan matches. A count alone races a fast start. */
  async function idleForOverASecond(app: string): Promise<number> {
    const admin = new PgClient({ connectionString: env.DATABASE_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle' AND state_change < now() - interval '1 second'`, [
        app,
      ]);
      return Number(rows[0]!.n);
    } finally {
      await admin.end();
    }
  }

  async function pgSetting(): Promise<{ setting: string; pending_restart: boolean }> {
    const admin = new PgClient({ connectionString: env.DATABASE_URL });
    await admin.connect();
    try {
      return (await admin.query<{ setting: string; pending_restart: boolean }>(`SELECT setting, pending_restart FROM pg_settings WHERE name = 'max_connections'`)).rows[0]!;
    } finally {
      await admin.end();
    }
  }

  const kc = adminKubeConfig();
  /** Deployments of this test's own, database-like but restarted by scaling to 0 (RollingUpdate on a ReadWriteOnce claim). */
  const scratch: string[] = [];

  async function singleWriterRollingUpdate(): Promise<string> {
    const name = unique('dbce-rwo');
    scratch.push(name);
    await scratchSingleWriter(kc, name);
    return name;
  }

  /** Runs share one workflow id per target (dedupe): a run left behind by a failed test must not be joined by the next. */
  async function terminateLeftover(): Promise<void> {
    const ids = ['postgres', ...scratch].flatMap((d) => [`dbConnectionExhaustion/${kubernetesNamespace}/${d}`, `lock/${kubernetesNamespace}/${d}`]);
    await terminateRuns(config.temporal, ids);
  }

  /** The leaked sessions ended, and max_connections the seeded 100 again. */
  async function resetDatabase(): Promise<void> {
    const admin = new PgClient({ connectionString: env.DATABASE_URL });
    await admin.connect();
    // The busy sessions first: a client ends only once its server session does.
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'leaky-%'`);
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
    await admin.end();
    await seededMaxConnections(kc);
  }

  beforeAll(async () => {
    await terminateLeftover();
    await resetDatabase();
  });

  afterEach(async () => {
    await terminateLeftover();
    await Promise.all(scratch.splice(0).map((name) => deleteSingleWriter(kc, name)));
    await resetDatabase();
  });

  test('plan: names the exact changes and changes nothing', async () => {
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 12);
    await waitUntil('12 sessions idle for over a second', async () => (await idleForOverASecond(app)) === 12);
    const rolling = await singleWriterRollingUpdate();
    const [result, scaled] = await withRunbooks(config, async ({ runbooks }) => {
      const planOf = async (deployment: string) => {
        const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { deployment, idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' });
        return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
      };
      return [await planOf('postgres'), await planOf(rolling)];
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.summary])).toEqual([
      ['terminate-idle', 'terminate idle connections to short_drama_prod older than 1s, at most 50'],
      ['raise-max-connections', 'max_connections 100 -> 150 (ALTER SYSTEM; takes effect after a restart)'],
      // The seeded database rolls with Recreate: the old pod stops before the new one starts.
      ['restart-database', expect.stringMatching(/^rolling restart of short-drama-prod\/postgres \(restartedAt \S+\)$/)],
    ]);
    expect(scaled.plan.find((p) => p.stepId === 'restart-database')?.change.summary).toBe(
      `restart of short-drama-prod/${rolling} by scaling 1 -> 0, waiting until no pod of it exists, then back to 1 (its pods mount persistentvolumeclaims/${rolling} (ReadWriteOnce) and strategy RollingUpdate would start the new pod before the old one stops)`,
    );
    expect((result.plan[0]!.change.observed as { matching: number }).matching).toBeGreaterThanOrEqual(12);
    expect(await sessions(app)).toEqual({ idle: 12, active: 2 });
    expect(await pgSetting()).toEqual({ setting: '100', pending_restart: false });
    expect(result.report?.markdownKey).toMatch(/^runbooks\/reports\/dbConnectionExhaustion\//); // the diagnosis is reported too
  });

  test('execute + approve on a RollingUpdate deployment with a ReadWriteOnce volume: only old idle sessions go, scaled to 0 and back once; its pod is no PostgreSQL server, so max_connections stays 100 and the run ends failed saying so', async () => {
    const rolling = await singleWriterRollingUpdate();
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 15);
    await waitUntil('15 sessions idle for over a second', async () => (await idleForOverASecond(app)) === 15);
    const pods = await watchPods(kc, kubernetesNamespace, `app=${rolling}`);
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook(
        'dbConnectionExhaustion',
        { deployment: rolling, mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150, severity: 'P0' },
        { startedBy: 'erin' },
      );
      await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections', 'restart-database']);
      const finished = await runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'approved-scale-to-zero');
      return finished;
    });
    // The pod restarted runs no PostgreSQL: the database's server never restarted.
    expect(await pgSetting()).toEqual({ setting: '100', pending_restart: true });
    await expectMaxConnectionsStillOld(result, rolling);
    expect(await sessions(app)).toEqual({ active: 2 });
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['terminate-idle', 'raise-max-connections', 'restart-database']);
    const restart = result.timeline.find((e) => e.event === 'applied' && e.stepId === 'restart-database')!;
    expect(restart.detail).toMatch(
      new RegExp(`^deployments\\.apps/${rolling} scaled to 0, no pod left after \\d+s, scaled back to 1; rollout complete \\(1/1 ready\\); PostgreSQL .* accepts connections`),
    );
    // Watched for real: the old pod was gone before the new one was created, never two on the volume.
    pods.stop();
    expect(pods.seen.size).toBe(2);
    expect(pods.maxAtOnce()).toBe(1);

    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
  });

  /**
   * The restart left the server that answers on the old max_connections: the run ends failed with
   * the sentence in its result, its finished entry and its report (never completed).
   */
  async function expectMaxConnectionsStillOld(result: DbConnectionExhaustionResult, deployment: string): Promise<void> {
    const sentence = `dbConnectionExhaustion promised max_connections 150 once short-drama-prod/${deployment} restarted, but max_connections is still 100 after the restart (pending_restart true: the server that answers did not restart)`;
    expect(result.outcome).toBe('failed');
    expect(result.summary.startsWith(sentence)).toBe(true);
    expect(result.timeline.find((e) => e.event === 'failed' && e.stepId === 'verify')?.detail).toContain(sentence);
    expect(result.timeline.at(-1)).toMatchObject({ event: 'finished', detail: expect.stringContaining(`failed: ${sentence}`) });
    expect(await readBucketText(result.report!.markdownKey)).toContain(sentence);
  }

  test('execute + reject: nothing changes and the run says what was not done', async () => {
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 5);
    await waitUntil('5 sessions idle for over a second', async () => (await idleForOverASecond(app)) === 5);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' });
      for (const step of ['terminate-idle', 'raise-max-connections']) {
        const pending = await pendingOf(runbooks, workflowId, step);
        await runbooks.reject(workflowId, { stepId: step, planHash: pending.planHash, approver: 'carol', reason: 'not now' });
      }
      return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual([
      ['terminate-idle', 'rejected'],
      ['raise-max-connections', 'rejected'],
      ['restart-database', 'depends on "raise-max-connections", which was not applied'],
    ]);
    expect(await sessions(app)).toEqual({ idle: 5, active: 2 });
    expect(await pgSetting()).toEqual({ setting: '100', pending_restart: false });
  });

  test('a worker lost between two steps: another worker resumes, and the seeded database (Recreate, on the real node) is restarted exactly once, never two postgres pods at once (watched), and then runs with the new max_connections', async () => {
    const apps = adminKubeConfig().makeApiClient(AppsV1Api);
    const revisionOf = async () => Number((await apps.readNamespacedDeployment('postgres', 'short-drama-prod')).body.metadata?.annotations?.['deployment.kubernetes.io/revision']);
    const before = await revisionOf();
    const pods = await watchPods(adminKubeConfig(), 'short-drama-prod', 'app=postgres');
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 3);
    await waitUntil('3 sessions idle for over a second', async () => (await idleForOverASecond(app)) === 3);
    let workflowId = '';
    // First worker: start, approve the first two steps, then the worker goes away before the restart is approved.
    await withRunbooks(config, async ({ runbooks }) => {
      ({ workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' }));
      await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections']);
      await pendingOf(runbooks, workflowId, 'restart-database');
    });
    // Second worker (a new process would do the same): the run goes on from its history.
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const pending = await pendingOf(runbooks, workflowId, 'restart-database');
      await runbooks.approve(workflowId, { stepId: 'restart-database', planHash: pending.planHash, approver: 'bob', reason: 'restart now' });
      return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['terminate-idle', 'raise-max-connections', 'restart-database']);
    expect(result.timeline.find((e) => e.event === 'applied' && e.stepId === 'restart-database')?.detail).toMatch(
      /^changed deployments\.apps\/postgres restartedAt=\S+; rollout complete \(1\/1 ready\)/,
    );
    // One rollout (Recreate), once: one server replaced by exactly one other, the old one stopped before the new one ran.
    expect(await revisionOf()).toBe(before + 1);
    pods.stop();
    expect([pods.seen.size, pods.seenRunning().length, pods.maxRunning()]).toEqual([2, 2, 1]);
    // The server that answers restarted with the raised value, and the run checked so itself.
    expect(await pgSetting()).toEqual({ setting: '150', pending_restart: false });
    expect(result.timeline.find((e) => e.stepId === 'verify')?.detail).toMatch(/^verified: .*max_connections 150/);
  });

  test('the scale back is denied while the database is at 0: the step fails, nothing scales back onto a volume blindly, and the report says it is at 0 and how to restore', async () => {
    const rolling = await singleWriterRollingUpdate();
    const apps = kc.makeApiClient(AppsV1Api);
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const policyName = `test-db-stays-down-${randomUUID().slice(0, 8)}`;
    // An admission policy of the real API server that lets the deployment scale to 0 but not back up.
    const policy = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: policyName },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments/scale'], resourceNames: [rolling] }] },
        // replicas 0 is left out of the Scale object.
        validations: [{ expression: '!has(object.spec.replicas) || object.spec.replicas == 0', message: `change freeze: ${rolling} may only be scaled to 0` }],
      },
    } as KubernetesObject;
    const binding = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: policyName },
      spec: { policyName, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': kubernetesNamespace } } } },
    } as KubernetesObject;
    const scaleTo = (replicas: number, dryRun?: string) =>
      apps.patchNamespacedDeploymentScale(rolling, kubernetesNamespace, { spec: { replicas } }, undefined, dryRun, undefined, undefined, undefined, {
        headers: { 'Content-Type': 'application/merge-patch+json' },
      });
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 3);
    await waitUntil('3 sessions idle for over a second', async () => (await idleForOverASecond(app)) === 3);
    const pods = await watchPods(kc, kubernetesNamespace, `app=${rolling}`);
    await objects.create(policy);
    await objects.create(binding);
    try {
      await waitUntil('the admission policy denies scaling up', async () =>
        scaleTo(1, 'All').then(
          () => false,
          () => true,
        ),
      );
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook(
          'dbConnectionExhaustion',
          { deployment: rolling, mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 },
          { startedBy: 'erin' },
        );
        await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections', 'restart-database']);
        return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
      });
      expect(result.outcome).toBe('failed');
      const failed = result.timeline.find((e) => e.event === 'failed' && e.stepId === 'restart-database')?.detail ?? '';
      const restore = `restore with: kubectl -n ${kubernetesNamespace} scale deployment/${rolling} --replicas=1`;
      expect(failed).toMatch(
        new RegExp(`^${kubernetesNamespace}/${rolling} is at 0 replicas \\(the database is down\\)\\. Once no pod of it is left, ${restore}\\. Cause: .*denied request: change freeze`),
      );
      const markdown = await readBucketText(result.report!.markdownKey);
      expect(markdown).toContain(`RESTART INCOMPLETE: ${kubernetesNamespace}/${rolling} is at 0 replicas (the database is down)`);
      expect(markdown).toContain(restore);
      // It is what the report says: at 0, no pod, and never two pods.
      expect((await apps.readNamespacedDeployment(rolling, kubernetesNamespace)).body.spec?.replicas).toBe(0);
      expect((await kc.makeApiClient(CoreV1Api).listNamespacedPod(kubernetesNamespace, undefined, undefined, undefined, undefined, `app=${rolling}`)).body.items).toEqual([]);
      expect(pods.maxAtOnce()).toBe(1);
    } finally {
      pods.stop();
      await objects.delete(binding).catch(() => undefined);
      await objects.delete(policy).catch(() => undefined);
    }
  });

  /** The deployment's only pod, held terminating by a finalizer (as a slow shutdown would) until `release`. */
  async function holdTerminating(deployment: string): Promise<{ pod: string; release: () => Promise<unknown> }> {
    const core = kc.makeApiClient(CoreV1Api);
    const [old] = (await core.listNamespacedPod(kubernetesNamespace, undefined, undefined, undefined, undefined, `app=${deployment}`)).body.items;
    const pod = old!.metadata!.name!;
    const patch = (op: object) =>
      core.patchNamespacedPod(pod, kubernetesNamespace, [op], undefined, undefined, undefined, undefined, undefined, { headers: { 'Content-Type': 'application/json-patch+json' } });
    await patch({ op: 'add', path: '/metadata/finalizers', value: ['runbook-test/hold'] });
    return { pod, release: () => patch({ op: 'remove', path: '/metadata/finalizers' }).catch(() => undefined) };
  }

  /** Starts a run on `deployment`, approves all three steps, and waits until it is at 0 with its old pod still terminating. */
  async function startAndHoldAtZero(runbooks: RunbookClient, deployment: string, pod: string): Promise<string> {
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { deployment, mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' });
    await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections', 'restart-database']);
    await waitUntil('at 0 with the old pod terminating', async () => {
      const [d, p] = await Promise.all([apps.readNamespacedDeployment(deployment, kubernetesNamespace), core.readNamespacedPod(pod, kubernetesNamespace)]);
      return d.body.spec?.replicas === 0 && p.body.metadata?.deletionTimestamp !== undefined;
    });
    return workflowId;
  }

  /**
   * A run on a deployment of its own (RollingUpdate, ReadWriteOnce), all steps approved, held at 0
   * replicas while its old pod stays terminating; `whileAtZero` acts, then lets the pod go with
   * `release`. Pods are watched until `whileAtZero` returns.
   */
  async function heldAtZero<T>(
    whileAtZero: (run: { runbooks: RunbookClient; client: Client; workflowId: string; deployment: string; release: () => Promise<unknown> }) => Promise<T>,
  ): Promise<{ value: T; pods: PodWatch; deployment: string }> {
    const deployment = await singleWriterRollingUpdate();
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 3);
    await waitUntil('3 sessions idle for over a second', async () => (await idleForOverASecond(app)) === 3);
    const held = await holdTerminating(deployment);
    const pods = await watchPods(kc, kubernetesNamespace, `app=${deployment}`);
    try {
      const value = await withRunbooks(config, async ({ runbooks, client }) => {
        const workflowId = await startAndHoldAtZero(runbooks, deployment, held.pod);
        return whileAtZero({ runbooks, client, workflowId, deployment, release: held.release });
      });
      return { value, pods, deployment };
    } finally {
      pods.stop();
      await held.release();
    }
  }

  const readyReplicas = async (deployment: string) => (await kc.makeApiClient(AppsV1Api).readNamespacedDeployment(deployment, kubernetesNamespace)).body.status?.readyReplicas;
  const wantedReplicas = async (deployment: string) => (await kc.makeApiClient(AppsV1Api).readNamespacedDeployment(deployment, kubernetesNamespace)).body.spec?.replicas;

  test('cancelled while at 0 with the old pod still terminating: no new pod until it is gone, then scaled back; never two pods', async () => {
    const {
      value: result,
      pods,
      deployment,
    } = await heldAtZero(async ({ runbooks, client, workflowId, deployment, release }) => {
      await runbooks.cancel(workflowId, { by: 'carol', reason: 'stop now' });
      // Still waiting: the terminating pod may still write the volume, so nothing is scaled back yet.
      await waitUntil('the cancel is recorded', async () => (await runbooks.getStatus(workflowId)).timeline.some((e) => e.event === 'cancelled'));
      expect(await wantedReplicas(deployment)).toBe(0);
      await release();
      const finished = await canceledRun(runbooks, client, workflowId);
      expect(await readyReplicas(deployment)).toBe(1);
      return finished;
    });
    // A cancel stops further steps; the restart in progress finishes, so the database is not left down; then the run ends Canceled.
    expect(result.outcome).toBe('cancelled');
    expect(result.timeline.find((e) => e.event === 'cancelled')).toMatchObject({ by: 'carol', reason: 'stop now' });
    expect(result.timeline.at(-1)?.event).toBe('finished');
    expect(result.report?.markdownKey).toBeDefined();
    expect(result.timeline.find((e) => e.event === 'applied' && e.stepId === 'restart-database')?.detail).toMatch(
      new RegExp(`^deployments\\.apps/${deployment} scaled to 0, no pod left after \\d+s, scaled back to 1;`),
    );
    expect([pods.seen.size, pods.maxAtOnce()]).toEqual([2, 1]);
  });

  test('cancelled from Temporal (the UI) while at 0: the scale back still waits for the old pod, then happens; the run ends cancelled, never two pods', async () => {
    const { value: ended, pods } = await heldAtZero(async ({ client, workflowId, deployment, release }) => {
      const handle = client.workflow.getHandle(workflowId);
      await handle.cancel();
      await waitUntil('the cancel request is in the history', async () => (await handle.fetchHistory()).events!.some((e) => e.workflowExecutionCancelRequestedEventAttributes != null));
      expect(await wantedReplicas(deployment)).toBe(0);
      await release();
      const outcome = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      await recordHistory(handle, 'temporal-cancel-finishes-at-zero');
      // Not left down: back to 1 once the old pod was gone.
      await waitUntil('scaled back to 1 and ready', async () => (await readyReplicas(deployment)) === 1);
      return outcome;
    });
    expect(ended).toBeInstanceOf(WorkflowFailedError);
    expect((ended as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect([pods.seen.size, pods.maxAtOnce()]).toEqual([2, 1]);
  });

  test('bad input: a clear non-retryable error before anything is touched', async () => {
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('dbConnectionExhaustion', { idleOlderThanSeconds: -5 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for dbConnectionExhaustion: idleOlderThanSeconds: at least 1 second',
      );
      const handle = await client.workflow.start('dbConnectionExhaustion', { taskQueue, workflowId: `dbce-bad-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute' }] });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect(String(((error as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(handle)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
  });
});
