import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { Client as PgClient } from 'pg';
import { waitUntil } from '../../scripts/testbed/processes';
import type { DbConnectionExhaustionResult } from '../../workflows/db-connection-exhaustion';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { watchPods } from '../helpers/kube-pods';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { approveEach, expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';

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
    const busy = clients.slice(-2).map((c) => c.query('SELECT pg_sleep(20)').catch(() => undefined));
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

  async function pgSetting(): Promise<{ setting: string; pending_restart: boolean }> {
    const admin = new PgClient({ connectionString: env.DATABASE_URL });
    await admin.connect();
    try {
      return (await admin.query<{ setting: string; pending_restart: boolean }>(`SELECT setting, pending_restart FROM pg_settings WHERE name = 'max_connections'`)).rows[0]!;
    } finally {
      await admin.end();
    }
  }

  /** Runs share one workflow id per target (dedupe): a run left behind by a failed test must not be joined by the next. */
  async function terminateLeftover(): Promise<void> {
    await terminateRuns(config.temporal, ['dbConnectionExhaustion/short-drama-prod/postgres', 'lock/short-drama-prod/postgres']);
  }

  beforeAll(terminateLeftover);

  afterEach(async () => {
    await terminateLeftover();
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
    const admin = new PgClient({ connectionString: env.DATABASE_URL });
    await admin.connect();
    await admin.query('ALTER SYSTEM RESET max_connections');
    await admin.query('SELECT pg_reload_conf()');
    await admin.end();
  });

  test('plan: names the exact changes and changes nothing', async () => {
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 12);
    await waitUntil('idle sessions 2 s old', async () => (await sessions(app)).idle === 12);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' });
      return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.summary])).toEqual([
      ['terminate-idle', 'terminate idle connections to short_drama_prod older than 1s, at most 50'],
      ['raise-max-connections', 'max_connections 100 -> 150 (ALTER SYSTEM; takes effect after a restart)'],
      [
        'restart-database',
        'restart of short-drama-prod/postgres by scaling 1 -> 0, waiting until no pod of it exists, then back to 1 (its pods mount persistentvolumeclaims/postgres-pvc (ReadWriteOnce) and strategy RollingUpdate would start the new pod before the old one stops)',
      ],
    ]);
    expect((result.plan[0]!.change.observed as { matching: number }).matching).toBeGreaterThanOrEqual(12);
    expect(await sessions(app)).toEqual({ idle: 12, active: 2 });
    expect(await pgSetting()).toEqual({ setting: '100', pending_restart: false });
    expect(result.report?.markdownKey).toMatch(/^runbooks\/reports\/dbConnectionExhaustion\//); // the diagnosis is reported too
  });

  test('execute + approve: only old idle sessions go, max_connections pending, the database restarted once, report written', async () => {
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 15);
    await waitUntil('15 idle sessions', async () => (await sessions(app)).idle === 15);
    const pods = await watchPods(adminKubeConfig(), 'short-drama-prod', 'app=postgres');
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150, severity: 'P0' }, { startedBy: 'erin' });
      await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections', 'restart-database']);
      const finished = await runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'approved-scale-to-zero');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(await sessions(app)).toEqual({ active: 2 });
    expect(await pgSetting()).toEqual({ setting: '100', pending_restart: true });
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['terminate-idle', 'raise-max-connections', 'restart-database']);
    const restart = result.timeline.find((e) => e.event === 'applied' && e.stepId === 'restart-database')!;
    expect(restart.detail).toMatch(/^deployments\.apps\/postgres scaled to 0, no pod left after \d+s, scaled back to 1; rollout complete \(1\/1 ready\); PostgreSQL .* accepts connections/);
    // Watched for real: the old pod was gone before the new one was created, never two on the volume.
    pods.stop();
    expect(pods.seen.size).toBe(2);
    expect(pods.maxAtOnce()).toBe(1);

    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
  });

  test('execute + reject: nothing changes and the run says what was not done', async () => {
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 5);
    await waitUntil('5 idle sessions', async () => (await sessions(app)).idle === 5);
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

  test('a worker lost between two steps: another worker resumes, and the database is restarted exactly once', async () => {
    const apps = adminKubeConfig().makeApiClient(AppsV1Api);
    const revisionOf = async () => Number((await apps.readNamespacedDeployment('postgres', 'short-drama-prod')).body.metadata?.annotations?.['deployment.kubernetes.io/revision']);
    const before = await revisionOf();
    const pods = await watchPods(adminKubeConfig(), 'short-drama-prod', 'app=postgres');
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 3);
    await waitUntil('3 idle sessions', async () => (await sessions(app)).idle === 3);
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
    // Scaled to 0 and back (no new revision), once: one pod replaced by exactly one other.
    expect(await revisionOf()).toBe(before);
    pods.stop();
    expect([pods.seen.size, pods.maxAtOnce()]).toEqual([2, 1]);
    expect(await pgSetting()).toEqual({ setting: '100', pending_restart: true });
  });

  test('the scale back is denied while postgres is at 0: the step fails, nothing scales back onto a volume blindly, and the report says it is at 0 and how to restore', async () => {
    const kc = adminKubeConfig();
    const apps = kc.makeApiClient(AppsV1Api);
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const policyName = `test-postgres-stays-down-${randomUUID().slice(0, 8)}`;
    // An admission policy of the real API server that lets postgres scale to 0 but not back up.
    const policy = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: policyName },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['apps'], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['deployments/scale'], resourceNames: ['postgres'] }] },
        // replicas 0 is left out of the Scale object.
        validations: [{ expression: '!has(object.spec.replicas) || object.spec.replicas == 0', message: 'change freeze: postgres may only be scaled to 0' }],
      },
    } as KubernetesObject;
    const binding = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: policyName },
      spec: { policyName, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'short-drama-prod' } } } },
    } as KubernetesObject;
    const scaleTo = (replicas: number, dryRun?: string) =>
      apps.patchNamespacedDeploymentScale('postgres', 'short-drama-prod', { spec: { replicas } }, undefined, dryRun, undefined, undefined, undefined, {
        headers: { 'Content-Type': 'application/merge-patch+json' },
      });
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 3);
    await waitUntil('3 idle sessions', async () => (await sessions(app)).idle === 3);
    const pods = await watchPods(kc, 'short-drama-prod', 'app=postgres');
    await objects.create(policy);
    await objects.create(binding);
    try {
      await waitUntil('the admission policy denies scaling postgres up', async () =>
        scaleTo(2, 'All').then(
          () => false,
          () => true,
        ),
      );
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections', 'restart-database']);
        return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
      });
      expect(result.outcome).toBe('failed');
      const failed = result.timeline.find((e) => e.event === 'failed' && e.stepId === 'restart-database')?.detail ?? '';
      expect(failed).toMatch(
        /^short-drama-prod\/postgres is at 0 replicas \(the database is down\): .*change freeze: postgres may only be scaled to 0.*Once no pod of it is left, restore with: kubectl -n short-drama-prod scale deployment\/postgres --replicas=1/,
      );
      const markdown = await readBucketText(result.report!.markdownKey);
      expect(markdown).toContain('RESTART INCOMPLETE: short-drama-prod/postgres is at 0 replicas (the database is down)');
      expect(markdown).toContain('restore with: kubectl -n short-drama-prod scale deployment/postgres --replicas=1');
      // It is what the report says: at 0, no pod, and never two pods.
      expect((await apps.readNamespacedDeployment('postgres', 'short-drama-prod')).body.spec?.replicas).toBe(0);
      expect((await kc.makeApiClient(CoreV1Api).listNamespacedPod('short-drama-prod', undefined, undefined, undefined, undefined, 'app=postgres')).body.items).toEqual([]);
      expect(pods.maxAtOnce()).toBe(1);
    } finally {
      pods.stop();
      await objects.delete(binding).catch(() => undefined);
      await objects.delete(policy).catch(() => undefined);
      // Restored as the report says, for the tests after this one.
      await waitUntil('postgres scaled back to 1', async () =>
        scaleTo(1).then(
          () => true,
          () => false,
        ),
      );
      await waitUntil('postgres ready again', async () => ((await apps.readNamespacedDeployment('postgres', 'short-drama-prod')).body.status?.readyReplicas ?? 0) === 1);
    }
  });

  test('cancelled while at 0 with the old pod still terminating: no new pod until it is gone, then scaled back; never two pods', async () => {
    const kc = adminKubeConfig();
    const apps = kc.makeApiClient(AppsV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const app = `leaky-${randomUUID().slice(0, 8)}`;
    await openConnections(app, 3);
    await waitUntil('3 idle sessions', async () => (await sessions(app)).idle === 3);
    // A finalizer keeps the old pod terminating (as a slow shutdown would) until the test lets it go.
    const [old] = (await core.listNamespacedPod('short-drama-prod', undefined, undefined, undefined, undefined, 'app=postgres')).body.items;
    const oldPod = old!.metadata!.name!;
    const jsonPatch = { headers: { 'Content-Type': 'application/json-patch+json' } };
    const release = () =>
      core.patchNamespacedPod(oldPod, 'short-drama-prod', [{ op: 'remove', path: '/metadata/finalizers' }], undefined, undefined, undefined, undefined, undefined, jsonPatch).catch(() => undefined);
    await core.patchNamespacedPod(
      oldPod,
      'short-drama-prod',
      [{ op: 'add', path: '/metadata/finalizers', value: ['runbook-test/hold'] }],
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      jsonPatch,
    );
    const pods = await watchPods(kc, 'short-drama-prod', 'app=postgres');
    try {
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('dbConnectionExhaustion', { mode: 'execute', idleOlderThanSeconds: 1, raiseMaxConnectionsTo: 150 }, { startedBy: 'erin' });
        await approveEach(runbooks, workflowId, ['terminate-idle', 'raise-max-connections', 'restart-database']);
        await waitUntil('postgres at 0 with its old pod terminating', async () => {
          const [d, p] = await Promise.all([apps.readNamespacedDeployment('postgres', 'short-drama-prod'), core.readNamespacedPod(oldPod, 'short-drama-prod')]);
          return d.body.spec?.replicas === 0 && p.body.metadata?.deletionTimestamp !== undefined;
        });
        await runbooks.cancel(workflowId, { by: 'carol', reason: 'stop now' });
        // Still waiting: the terminating pod may still write the volume, so nothing is scaled back yet.
        await waitUntil('the cancel is recorded', async () => (await runbooks.getStatus(workflowId)).timeline.some((e) => e.event === 'cancelled'));
        expect((await apps.readNamespacedDeployment('postgres', 'short-drama-prod')).body.spec?.replicas).toBe(0);
        await release();
        return runbooks.waitForResult<DbConnectionExhaustionResult>(workflowId);
      });
      // A cancel stops further steps; the restart in progress finishes, so the database is not left down.
      expect(result.outcome).toBe('cancelled');
      expect(result.timeline.find((e) => e.event === 'applied' && e.stepId === 'restart-database')?.detail).toMatch(
        /^deployments\.apps\/postgres scaled to 0, no pod left after \d+s, scaled back to 1;/,
      );
      expect((await apps.readNamespacedDeployment('postgres', 'short-drama-prod')).body.status?.readyReplicas).toBe(1);
      pods.stop();
      expect([pods.seen.size, pods.maxAtOnce()]).toEqual([2, 1]);
    } finally {
      await release();
    }
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
