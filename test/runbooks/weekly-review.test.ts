import { randomUUID } from 'node:crypto';
import { CustomObjectsApi, CoreV1Api } from '@kubernetes/client-node';
import { WorkflowFailedError } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { manualQueries, type ManualQueryName } from '../../activities/prometheus';
import { createRunbookClient, type RunbookClient } from '../../client';
import type { CheckRow, ChecklistResult } from '../../common/checklist';
import type { RunbookConfig } from '../../config/schema';
import { clusterIssuer } from '../../scripts/testbed/kubernetes-seed';
import { waitUntil } from '../../scripts/testbed/processes';
import { recordHistory } from '../helpers/histories';
import { startBySchedule } from '../helpers/schedule-runs';
import { appPods, lockProjects } from '../helpers/app-pods';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { certManager } from '../helpers/cert-manager';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/postgres-scratch';
import { pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { closedPort, testbedConfig, testbedEnv } from '../helpers/testbed';
import { withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';
const workflowId = `weeklyReview/${namespace}`;
const performanceRows = ['performance.p95', 'performance.error-rate', 'performance.db-connections', 'performance.cache-hit-rate'];

interface Message {
  body: { text: string; blocks?: Array<{ text?: { text?: string } }>; metadata?: { event_payload?: { dedupeKey?: string } } };
}

/**
 * 每周检查清单 against the real sandbox. The database is a scratch copy of the seed (same tables
 * and sessions), so deleting sessions and the slow statements made here touch nothing other tests
 * read, and pg_stat_statements holds only this database's statements. The problems are made for
 * real: a lock on the app's `projects` table while the app's users keep coming (app-traffic.js) and
 * requests pile up (slow, failing, cache misses, the pool grown), failed logins and forbidden
 * requests the app logs, a Certificate of the test's own, `pg_sleep` statements. Everything is put
 * back afterwards.
 */
describe('weeklyReview', () => {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const app = appPods(kc);
  const certName = `weekly-cert-${randomUUID().slice(0, 8)}`;
  let scratch: ScratchDatabase;
  let config: RunbookConfig;

  const rowOf = (result: ChecklistResult, id: string): CheckRow => {
    const row = result.checks.find((r) => r.id === id);
    if (!row) throw new Error(`no row ${id}; rows: ${result.checks.map((r) => r.id).join(', ')}`);
    return row;
  };

  /** As the worker's role, or as the superuser for what only it may do (resetting pg_stat_statements). */
  async function sql<T = Record<string, unknown>>(text: string, params: unknown[] = [], as: 'worker' | 'admin' = 'worker'): Promise<T[]> {
    const client = new PgClient({ connectionString: as === 'admin' ? scratch.adminUrl : scratch.url, application_name: 'weekly-review-test' });
    await client.connect();
    try {
      return (await client.query(text, params)).rows as T[];
    } finally {
      await client.end();
    }
  }
  /** Sessions by kind: live, recent (expired a day ago) and stale (expired over 7 days ago). */
  const sessionsByKind = async () =>
    Object.fromEntries((await sql<{ kind: string; n: number }>(`SELECT split_part(id, '-', 1) AS kind, count(*)::int AS n FROM sessions GROUP BY 1 ORDER BY 1`)).map((r) => [r.kind, r.n]));
  /** `count` sessions that expired 30 days ago, as weeks of traffic leave them. */
  const addStaleSessions = (count: number) =>
    sql(`INSERT INTO sessions (id, user_id, created_at, expires_at) SELECT 'stale-' || $1 || '-' || i, 1, now() - interval '40 days', now() - interval '30 days' FROM generate_series(1, $2) AS i`, [
      randomUUID().slice(0, 8),
      count,
    ]);

  const promValue = async (name: ManualQueryName, window: string): Promise<number | undefined> => {
    const url = new URL('api/v1/query', `${env.PROMETHEUS_URL}/`);
    url.searchParams.set('query', manualQueries[name](window));
    const body = (await (await fetch(url)).json()) as { data: { result: Array<{ value: [number, string] }> } };
    const value = body.data.result[0] ? Number(body.data.result[0].value[1]) : undefined;
    return value === undefined || Number.isNaN(value) ? undefined : value;
  };

  const promHealthy = async (window: string) =>
    ((await promValue('p95LatencySeconds', window)) ?? 99) < 2 &&
    ((await promValue('errorRatePercent', window)) ?? 99) < 1 &&
    ((await promValue('cacheHitRatePercent', window)) ?? 0) > 80 &&
    ((await promValue('databaseConnectionsActive', window)) ?? 99) < 50;

  /** Pods of the app that other tests replaced have no metrics for a while: healthy means measured. */
  const appPodsMeasured = async () => {
    const pods = (await core.listNamespacedPod(namespace, undefined, undefined, undefined, undefined, 'app=short-drama-app')).body.items.map((p) => p.metadata!.name!);
    const metrics = (await custom.listNamespacedCustomObject('metrics.k8s.io', 'v1beta1', namespace, 'pods', undefined, undefined, undefined, undefined, 'app=short-drama-app')).body as {
      items: Array<{ metadata: { name: string } }>;
    };
    const measured = new Set(metrics.items.map((m) => m.metadata.name));
    return pods.length > 0 && pods.every((name) => measured.has(name));
  };

  /** A cert-manager Certificate of the test's own, issued for `days` days by the sandbox's issuer (the seeded app-tls-cert stays as it is). */
  async function certificate(days: number): Promise<void> {
    const recreate = async () => {
      await custom.createNamespacedCustomObject('cert-manager.io', 'v1', namespace, 'certificates', {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: certName, namespace },
        spec: {
          secretName: certName,
          dnsNames: [`${certName}.example`],
          duration: `${days * 24}h`,
          renewBefore: '1h',
          issuerRef: { name: clusterIssuer, kind: 'ClusterIssuer', group: 'cert-manager.io' },
        },
      });
    };
    await certManager(kc).renew(namespace, certName, { recreate, dropSecret: true });
  }

  interface RunOptions {
    config?: RunbookConfig;
    record?: string;
    /** While the run is in flight (approvals). */
    during?: (runbooks: RunbookClient, id: string) => Promise<void>;
    /** Started by a real Temporal Schedule (this deployment's schedule id), not by a person. */
    bySchedule?: boolean;
  }

  async function runWeekly(input: Record<string, unknown>, options: RunOptions = {}): Promise<{ result: ChecklistResult; runId: string }> {
    const cfg = options.config ?? config;
    // The dedupe id is shared by every weekly run, and the lock workflow lives on an earlier test's task queue.
    await terminateRuns(cfg.temporal, [workflowId, `lock/${namespace}`]);
    return withWorker(cfg, async ({ client }) => {
      const runbooks = createRunbookClient({ client, taskQueue: cfg.temporal.taskQueue });
      if (options.bySchedule) {
        const taskQueue = cfg.temporal.taskQueue;
        const run = await startBySchedule(client, {
          taskQueue,
          workflowType: 'weeklyReview',
          workflowId,
          args: [{ database: scratch.name, ...input, startedBy: `schedule:${taskQueue}:weeklyReview` }],
        });
        try {
          const result = await client.workflow.getHandle(run.workflowId, run.runId).result();
          if (options.record) await recordHistory(client.workflow.getHandle(run.workflowId, run.runId), options.record);
          return { result: result as ChecklistResult, runId: run.runId };
        } finally {
          await run.remove();
        }
      }
      const { workflowId: id, runId } = await runbooks.startRunbook('weeklyReview', { database: scratch.name, ...input }, { startedBy: 'erin' });
      expect(id).toBe(workflowId);
      await options.during?.(runbooks, id);
      const result = await runbooks.waitForResult<ChecklistResult>(id);
      if (options.record) await recordHistory(client.workflow.getHandle(id), options.record);
      return { result, runId };
    });
  }

  const summaryOf = async (runId: string): Promise<Message | undefined> => {
    const messages = (await (await fetch(`${env.TESTBED_WEBHOOK_URL}/messages`)).json()) as Message[];
    return messages.find((m) => m.body.metadata?.event_payload?.dedupeKey === `${workflowId}/${runId}/summary`);
  };

  beforeAll(async () => {
    scratch = await createScratchDatabase('weekly', { seed: true });
    config = testbedConfig({
      DATABASE_URL: scratch.url,
      ALLOWED_DATABASES: scratch.name,
      RUNBOOK_APPROVERS: JSON.stringify([{ id: 'bob', roles: ['l2'] }]),
    });
  });

  afterAll(async () => {
    await custom.deleteNamespacedCustomObject('cert-manager.io', 'v1', namespace, 'certificates', certName).catch(() => undefined);
    await core.deleteNamespacedSecret(certName, namespace).catch(() => undefined);
    if (config) await terminateRuns(config.temporal, [workflowId, `lock/${namespace}`]);
    await scratch?.drop();
  });

  test('a healthy sandbox passes every review; plan mode deletes nothing; the report is in S3 and the summary was sent', async () => {
    // Other tests slow the sandbox app down for a while too: a short window, once it reads healthy.
    const window = '1m';
    await waitUntil('Prometheus to read healthy over the window', () => promHealthy(window), 120_000);
    await waitUntil('the metrics API to report every app pod', appPodsMeasured, 120_000);
    const { result, runId } = await runWeekly({ window });
    for (const id of [
      ...performanceRows,
      'performance.cpu',
      'performance.memory',
      'security.login-failures',
      'security.auth-errors',
      'security.certificate',
      'database.size',
      'database.largest-tables',
      'database.slow-statements',
      'database.expired-sessions',
      'database.vacuum',
      'redis.keys-without-ttl',
    ]) {
      expect(rowOf(result, id)).toMatchObject({ id, status: 'PASS' }); // the whole row shows when not
    }
    expect(result.checks.filter((r) => r.status !== 'PASS')).toEqual([]);
    expect(result.overall).toBe('PASS');
    expect(rowOf(result, 'performance.p95')).toMatchObject({ threshold: '< 2 s', value: expect.stringMatching(/^[\d.]+ s$/), section: '性能指标审查' });
    expect(rowOf(result, 'performance.p95').detail).toBe('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))');
    expect(rowOf(result, 'performance.db-connections')).toMatchObject({ value: expect.stringMatching(/^\d+$/), threshold: '< 50' });
    expect(rowOf(result, 'performance.cpu').detail).toMatch(/^highest: short-drama-app-/);
    expect(rowOf(result, 'security.certificate').value).toMatch(/^\d+ days left \(notAfter /);
    expect(rowOf(result, 'database.size').title).toBe(`Database ${scratch.name} size`);
    expect(rowOf(result, 'database.largest-tables').detail).toMatch(/public\.storyboards/);
    expect(rowOf(result, 'database.slow-statements').detail).toMatch(/mean_exec_time/);

    // Plan mode: the delete is planned with the count, nothing is deleted, VACUUM does not run.
    expect(result.outcome).toBe('planned');
    expect(rowOf(result, 'database.expired-sessions')).toMatchObject({ value: '60 to delete' });
    expect(rowOf(result, 'database.vacuum').value).toBe('not run');
    const [planned] = result.plan;
    expect(planned).toMatchObject({ stepId: 'delete-expired-sessions', change: { needed: true, observed: { expired: 60 } } });
    expect(planned!.change.summary).toBe(`delete rows of ${scratch.name}.public.sessions that expired more than 7 days ago, in batches, at most 1000000`);
    expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, stale: 60 });

    expect(result.checklistReport?.jsonKey).toMatch(/^runbooks\/checklists\/weeklyReview\/.+\.json$/);
    const json = JSON.parse(await readBucketText(result.checklistReport!.jsonKey)) as { overall: string; checks: CheckRow[]; changes: string[] };
    expect(json.overall).toBe('PASS');
    expect(json.checks.map((r) => r.id)).toEqual(result.checks.map((r) => r.id));
    expect(json.changes).toEqual([expect.stringMatching(/^delete-expired-sessions: planned: 60 to delete/)]);
    const markdown = await readBucketText(result.checklistReport!.markdownKey);
    expect(markdown).toContain('# weeklyReview: PASS');
    for (const section of ['## 性能指标审查', '## 安全审计', '## 数据库维护', '## Changes']) expect(markdown).toContain(section);
    const summary = await summaryOf(runId);
    expect(summary?.body.text).toMatch(/^weeklyReview: PASS: 0 FAIL, 0 WARN, \d+ PASS/);
  }, 180_000);

  test('injected problems: P95, error rate, connections and cache in Prometheus, login failures and 401/403 in the log, a certificate near expiry, slow statements', async () => {
    const window = '30s';
    let lock: Awaited<ReturnType<typeof lockProjects>> | undefined;
    let busy: Awaited<ReturnType<typeof app.busyRequests>> | undefined;
    try {
      // On every app pod: 12 logins of unknown users (a "login failed" and a 401 line each), then 24 requests for another user's project (403).
      await app.failedLogins(12);
      await app.forbidden(24);
      await certificate(20);
      for (let i = 0; i < 2; i++) await sql('SELECT pg_sleep(1.2)');
      // A lock on projects: the users' requests (app-traffic.js) fail after the app's 2 s statement
      // timeout, and the cached count expires and cannot be read again (misses).
      lock = await lockProjects(env.TESTBED_DATABASE_ADMIN_URL!);
      const degraded = async () =>
        ((await promValue('p95LatencySeconds', window)) ?? 0) > 2.5 && ((await promValue('errorRatePercent', window)) ?? 0) > 2 && ((await promValue('cacheHitRatePercent', window)) ?? 100) < 70;
      // Prometheus scrapes every 2 s; the rates over the window follow within it.
      await waitUntil('Prometheus to show the slow, failing requests and the cache misses', degraded, 120_000);
      // Then requests pile up, 28 on each pod, each holding a pooled connection: late, so their log
      // lines leave the 401/403 lines above in the newest 256 KiB the review reads.
      busy = await app.busyRequests(28);
      await waitUntil('Prometheus to show the grown pool too', async () => ((await promValue('databaseConnectionsActive', window)) ?? 0) >= 50 && (await degraded()), 60_000);

      const { result, runId } = await runWeekly({ window, certificate: certName });
      expect(result.overall).toBe('FAIL');
      expect(rowOf(result, 'performance.p95')).toMatchObject({ status: 'FAIL', threshold: '< 2 s' });
      expect(parseFloat(rowOf(result, 'performance.p95').value)).toBeGreaterThan(2);
      expect(rowOf(result, 'performance.error-rate').status).toBe('FAIL');
      expect(parseFloat(rowOf(result, 'performance.error-rate').value)).toBeGreaterThan(1);
      expect(rowOf(result, 'performance.db-connections').status).toBe('WARN');
      expect(Number(rowOf(result, 'performance.db-connections').value)).toBeGreaterThanOrEqual(50);
      expect(rowOf(result, 'performance.cache-hit-rate').status).toBe('WARN');
      expect(rowOf(result, 'security.login-failures')).toMatchObject({ status: 'WARN', value: '12', threshold: '<= 10' });
      expect(rowOf(result, 'security.login-failures').detail).toMatch(/login failed for "intruder\d+@example\.net" from /);
      expect(rowOf(result, 'security.auth-errors')).toMatchObject({ status: 'WARN', value: '36', threshold: '<= 20' });
      expect(rowOf(result, 'security.auth-errors').detail).toMatch(/latest: GET \/api\/projects\/200 403 \d+ms/);
      // The log itself went to S3 evidence (the history keeps counts and the key), with the lines that matched nothing.
      const logKey = /\(log: (runbooks\/evidence\/weeklyReview\/[^)]+\.log)\)/.exec(rowOf(result, 'security.auth-errors').detail)?.[1];
      expect(await readBucketText(logKey!)).toMatch(/short-drama-app \S+ listening on :8000/);
      expect(rowOf(result, 'security.certificate')).toMatchObject({ status: 'WARN', threshold: '>= 30 days' });
      expect(rowOf(result, 'security.certificate').value).toMatch(/^(19|20) days left/);
      expect(rowOf(result, 'database.slow-statements')).toMatchObject({ status: 'WARN' });
      const slow = rowOf(result, 'database.slow-statements').detail;
      expect(slow).toMatch(/^1 over the threshold; the \d+ slowest in [^:]+: 1\. SELECT pg_sleep\(\$1\) \(mean 1[23]\d\d(\.\d+)? ms/);
      // Every statement the check read is listed, numbered, not only the slowest one.
      const listed = Number(/the (\d+) slowest/.exec(slow)![1]);
      expect(listed).toBeGreaterThan(1);
      expect(slow.match(/(?:: |; )\d+\. /g)).toHaveLength(listed);
      // What was not broken still passes.
      expect(rowOf(result, 'database.size')).toMatchObject({ status: 'PASS' });
      expect(rowOf(result, 'database.largest-tables')).toMatchObject({ status: 'PASS' });

      const markdown = await readBucketText(result.checklistReport!.markdownKey);
      const start = markdown.indexOf('## Needs attention');
      const attention = markdown.slice(start, markdown.indexOf('\n## ', start + 5));
      expect(attention.lastIndexOf('FAIL')).toBeLessThan(attention.indexOf('WARN'));
      // Pods of the shared sandbox come and go (other tests): rows beyond the injected ones may WARN.
      const { FAIL, WARN, PASS } = result.counts;
      expect(FAIL).toBe(2);
      expect(WARN).toBeGreaterThanOrEqual(6);
      const summary = await summaryOf(runId);
      expect(summary?.body.text).toBe(`[P2] weeklyReview: FAIL: ${FAIL} FAIL, ${WARN} WARN, ${PASS} PASS`);
      const lines = (summary!.body.blocks?.[1]?.text?.text ?? '').split('\n').filter((l) => /^(FAIL|WARN) /.test(l));
      expect(lines.map((l) => l.split(' ')[0])).toEqual([...Array<string>(FAIL).fill('FAIL'), ...Array<string>(WARN).fill('WARN')]);
      expect(lines[0]).toMatch(/^FAIL API response time P95: [\d.]+ s \(< 2 s\) — histogram_quantile/);
      expect(lines[1]).toMatch(/^FAIL API error rate: /);
    } finally {
      await busy?.stop();
      await lock?.release();
      await sql(`SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)`, [], 'admin');
      // Others read the same Prometheus: wait until the short window is healthy again.
      await waitUntil('Prometheus healthy again', () => promHealthy(window), 120_000);
    }
  }, 360_000);

  test('a certificate below a quarter of the minimum, or expired and not Ready, is a FAIL', async () => {
    await certificate(5);
    const soon = (await runWeekly({ certificate: certName })).result;
    expect(rowOf(soon, 'security.certificate')).toMatchObject({ status: 'FAIL' });
    expect(rowOf(soon, 'security.certificate').value).toMatch(/^[45] days left/);

    // It ran out while renewal failed (the issuer broken, then cert-manager backing off).
    await certManager(kc).expire(namespace, certName);
    const expired = (await runWeekly({ certificate: certName })).result;
    expect(rowOf(expired, 'security.certificate')).toMatchObject({ status: 'FAIL', detail: 'expired: run certificateExpiry' });
    expect(rowOf(expired, 'security.certificate').value).toMatch(/^-[23] days left/);
    expect(expired.overall).toBe('FAIL');
  }, 240_000);

  test('Prometheus down: its rows are WARN with the reason, the rest is measured and the run completes', async () => {
    const { result } = await runWeekly({}, { config: testbedConfig({ DATABASE_URL: scratch.url, ALLOWED_DATABASES: scratch.name, PROMETHEUS_URL: `http://127.0.0.1:${closedPort}` }) });
    for (const id of performanceRows) {
      expect([id, rowOf(result, id).status, rowOf(result, id).value]).toEqual([id, 'WARN', 'not measured']);
      expect(rowOf(result, id).detail).toMatch(/^Prometheus could not answer: .*ECONNREFUSED/);
    }
    expect(rowOf(result, 'performance.cpu').status).toBe('PASS');
    expect(rowOf(result, 'database.size').status).toBe('PASS');
    expect(result.outcome).toBe('planned');
    expect(result.overall).toBe('WARN');
  }, 240_000);

  test('no data over the window (shorter than two scrapes) is a WARN naming the query, not a PASS', async () => {
    const { result } = await runWeekly({ window: '1s' });
    for (const id of ['performance.p95', 'performance.error-rate', 'performance.cache-hit-rate']) {
      expect(rowOf(result, id)).toMatchObject({ status: 'WARN', value: 'no data', detail: expect.stringMatching(/^Prometheus has no data for .*\[1s\]/) });
    }
    // A gauge needs no window: still measured.
    expect(rowOf(result, 'performance.db-connections')).toMatchObject({ status: 'PASS', value: expect.stringMatching(/^\d+$/) });
  }, 120_000);

  test('execute: the delete waits for a person; after approval only sessions expired over 7 days ago are gone; then VACUUM ANALYZE', async () => {
    expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, stale: 60 });
    const { result } = await runWeekly(
      { mode: 'execute' },
      {
        record: 'checklist',
        during: async (runbooks, id) => {
          const pending = await pendingOf(runbooks, id, 'delete-expired-sessions');
          expect(pending.change.observed).toMatchObject({ expired: 60 });
          expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, stale: 60 }); // nothing before the decision
          await runbooks.approve(id, { stepId: 'delete-expired-sessions', planHash: pending.planHash, approver: 'bob', reason: 'weekly cleanup' });
        },
      },
    );
    expect(result.outcome).toBe('completed');
    expect(await sessionsByKind()).toEqual({ live: 100, recent: 40 });
    expect(rowOf(result, 'database.expired-sessions')).toMatchObject({ status: 'PASS', value: '60 deleted', detail: 'in 1 batch, approved by bob' });
    expect(result.timeline.find((e) => e.event === 'decided')).toMatchObject({ stepId: 'delete-expired-sessions', by: 'bob', channel: 'update' });
    expect(result.timeline.find((e) => e.event === 'applied')?.detail).toMatch(/^deleted 60 sessions expired before .* in 1 batch; 0 left$/);
    expect(rowOf(result, 'database.vacuum')).toMatchObject({ status: 'PASS', value: expect.stringMatching(/^done in \d+ ms$/) });
    const vacuumed = await sql<{ n: number }>(`SELECT (vacuum_count + autovacuum_count)::int AS n FROM pg_stat_user_tables WHERE relname = 'sessions'`);
    expect(vacuumed[0]!.n).toBeGreaterThanOrEqual(1);
    const markdown = await readBucketText(result.checklistReport!.markdownKey);
    expect(markdown).toMatch(/## Changes\n\n- delete-expired-sessions: applied: 60 deleted; in 1 batch, approved by bob/);
  }, 240_000);

  test('execute + reject: nothing is deleted and the row says who rejected it', async () => {
    await addStaleSessions(15);
    const { result } = await runWeekly(
      { mode: 'execute' },
      {
        during: async (runbooks, id) => {
          const pending = await pendingOf(runbooks, id, 'delete-expired-sessions');
          await runbooks.reject(id, { stepId: 'delete-expired-sessions', planHash: pending.planHash, approver: 'bob', reason: 'audit first' });
        },
      },
    );
    expect(result.outcome).toBe('rejected');
    expect(await sessionsByKind()).toEqual({ live: 100, recent: 40, stale: 15 });
    expect(rowOf(result, 'database.expired-sessions')).toMatchObject({ status: 'WARN', value: '15 not deleted', detail: 'rejected by bob: audit first' });
    expect(rowOf(result, 'database.vacuum').value).toMatch(/^done in/);
  }, 240_000);

  test('a scheduled run is approved by policy weekly-maintenance, without a person', async () => {
    await addStaleSessions(25);
    const before = await sessionsByKind();
    expect(before.stale).toBeGreaterThanOrEqual(25);
    const { result } = await runWeekly({ mode: 'execute' }, { bySchedule: true, record: 'scheduled' });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'decided')).toEqual([
      expect.objectContaining({
        stepId: 'delete-expired-sessions',
        by: 'policy weekly-maintenance',
        channel: 'policy',
        reason: expect.stringMatching(/^approved by policy weekly-maintenance \(schedule \S+:weeklyReview lists this run \(asked the server\)\)$/),
      }),
    ]);
    expect(result.timeline.some((e) => e.event === 'requested')).toBe(false);
    expect(await sessionsByKind()).toEqual({ live: 100, recent: 40 });
    expect(rowOf(result, 'database.expired-sessions')).toMatchObject({ status: 'PASS', value: `${before.stale} deleted`, detail: 'in 1 batch, approved by policy weekly-maintenance' });
  }, 240_000);

  test('bad input fails the run at once, non-retryable, before any check', async () => {
    await terminateRuns(config.temporal, [workflowId]);
    await withWorker(config, async ({ client }) => {
      const handle = await client.workflow.start('weeklyReview', {
        taskQueue: config.temporal.taskQueue,
        workflowId: `weeklyReview/bad-${randomUUID()}`,
        args: [{ window: 'five minutes', sessionsExpiredDays: 0 }],
      });
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(((err as WorkflowFailedError).cause as Error).message).toMatch(/invalid input for weeklyReview: window: expected a PromQL duration.*sessionsExpiredDays/);
      expect(await scheduledActivityTypes(handle)).toEqual([]);
    });
  }, 60_000);
});
