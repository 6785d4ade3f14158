import { ApplicationFailure } from '@temporalio/workflow';
import type { DeleteExpiredSessionsResult } from '../activities/postgres-maintenance';
import type { ManualQueryName } from '../activities/prometheus';
import { above, below, countLines, listed, sharesOfLimit, type CheckRow, type ChecklistResult, type CheckStatus } from '../common/checklist';
import { type WeeklyReviewInput } from '../common/inputs/checklists';
import { Checklist, type RowBuilder } from './kernel/checklist';
import { errorMessage, type ChangeOutcome } from './kernel/runbook-run';
import { checkSlowStatements, oneLine } from './slow-statements-check';
import { validateInput } from './validate-input';
import { read, wait } from './activity-proxies';
import { catalog } from '../common/catalog';

/** The batched delete and VACUUM heartbeat their progress. */

export type WeeklyReviewResult = ChecklistResult;

const performance = '性能指标审查';
const security = '安全审计';
const database = '数据库维护';

/** 401/403 as whole numbers: the manual's `grep "403\|401"` would also count "took 1401ms". */
const authErrorPattern = /\b(401|403)\b/;

const batches = (n: number) => `${n} batch${n === 1 ? '' : 'es'}`;
const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * 每周检查清单: the performance review through the manual's PromQL and the metrics API; the
 * security audit of the app's logs and the TLS certificate; database size, largest tables and
 * slowest statements; then ⚠ the deletion of sessions expired over a week ago (approved by a
 * person, or by policy when a schedule started the run) and VACUUM ANALYZE (execute mode only).
 * The report (PASS/WARN/FAIL per check) goes to S3.
 */
export async function weeklyReview(raw: WeeklyReviewInput): Promise<WeeklyReviewResult> {
  const input = validateInput(catalog.weeklyReview, raw);
  const { namespace, window } = input;
  const checklist = await Checklist.begin(catalog.weeklyReview, input, 10);
  const t = checklist.thresholds;
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    databases: [input.database],
    names: [
      { name: input.appDeployment, what: 'deployment' },
      { name: input.certificate, what: 'certificate' },
    ],
  });

  // 性能指标审查: the manual's PromQL (监控和告警 > 查询示例) over the configured window.
  await checklist.check('performance', performance, `Prometheus: the manual's queries over ${window}`, async (row) => {
    const reviews: Array<{ id: string; title: string; name: ManualQueryName; threshold: string; status: (v: number) => CheckStatus; show: (v: number) => string }> = [
      // Users feel a slow or failing API at once: FAIL. The others are capacity signals: WARN.
      { id: 'performance.p95', title: 'API response time P95', name: 'p95LatencySeconds', threshold: `< ${t.p95Seconds} s`, status: (v) => below(v, t.p95Seconds), show: (v) => `${round(v, 3)} s` },
      {
        id: 'performance.error-rate',
        title: 'API error rate',
        name: 'errorRatePercent',
        threshold: `< ${t.errorRatePercent}%`,
        status: (v) => below(v, t.errorRatePercent),
        show: (v) => `${round(v, 2)}%`,
      },
      {
        id: 'performance.db-connections',
        title: 'Database connections',
        name: 'databaseConnectionsActive',
        threshold: `< ${t.dbConnections}`,
        status: (v) => below(v, t.dbConnections, 'WARN'),
        show: (v) => String(round(v, 1)),
      },
      {
        id: 'performance.cache-hit-rate',
        title: 'Cache hit rate',
        name: 'cacheHitRatePercent',
        threshold: `> ${t.cacheHitRatePercent}%`,
        status: (v) => above(v, t.cacheHitRatePercent, 'WARN'),
        show: (v) => `${round(v, 2)}%`,
      },
    ];
    // Each query on its own: one that fails (Prometheus down) is a WARN row; the others still count.
    return Promise.all(
      reviews.map(async (r) => {
        try {
          const { query, value } = await read.manualQuery({ name: r.name, window });
          if (value === undefined) return row({ id: r.id, title: r.title, status: 'WARN', value: 'no data', threshold: r.threshold, detail: `Prometheus has no data for ${query}` });
          const status = r.status(value);
          return row({ id: r.id, title: r.title, status, value: r.show(value), threshold: r.threshold, detail: query });
        } catch (err) {
          return row({ id: r.id, title: r.title, status: 'WARN', value: 'not measured', threshold: r.threshold, detail: `Prometheus could not answer: ${errorMessage(err)}` });
        }
      }),
    );
  });

  await checklist.check('usage', performance, `CPU and memory of ${input.appDeployment} against its limits (metrics API)`, async (row) => {
    const usage = await read.getPodUsage({ namespace, deployment: input.appDeployment });
    return (
      [
        ['cpu', 'CPU', t.cpuPercent],
        ['memory', 'Memory', t.memoryPercent],
      ] as const
    ).map(([resource, name, limit]) => {
      const base = { id: `performance.${resource}`, title: `${name} use of ${input.appDeployment} against its limit`, threshold: `< ${limit}%` };
      if (!usage.available) return row({ ...base, status: 'WARN', value: 'unavailable', detail: usage.reason });
      const { shares, top, unlimited } = sharesOfLimit(usage.pods, resource);
      if (shares.length === 0) return row({ ...base, status: 'WARN', value: 'no data', detail: `the metrics API reports no pods of deployment ${input.appDeployment} in ${namespace}` });
      if (!top) return row({ ...base, status: 'WARN', value: 'no limit', detail: `no ${resource} limit set on ${listed(unlimited)}: usage cannot be held against one` });
      const status = below(top.percent, limit, 'WARN');
      const detail = `highest: ${top.where} of ${shares.length} containers${unlimited.length > 0 ? `; no limit on ${listed(unlimited)}` : ''}`;
      return row({ ...base, status: unlimited.length > 0 && status === 'PASS' ? 'WARN' : status, value: `${top.percent}%`, detail });
    });
  });

  // 安全审计
  await checklist.check('app-logs', security, `Login failures and 401/403 lines in the logs of ${input.appDeployment}`, async (row) => {
    // The newest 256 KiB: the workflow history keeps what the activity returns, so no more.
    const logs = await read.getContainerLogs({ namespace, deployment: input.appDeployment, maxBytes: 262_144 });
    const scope = `${logs.pod}: ${logs.lines} lines${logs.truncated ? ' (the newest 256 KiB)' : ''}`;
    const failures = countLines(logs.text, /login failed/i);
    const authLines = logs.text.split('\n').filter((line) => authErrorPattern.test(line));
    const latest = authLines[authLines.length - 1];
    return [
      row({
        id: 'security.login-failures',
        title: 'Failed logins ("login failed")',
        status: failures.count > t.loginFailures ? 'WARN' : 'PASS',
        value: String(failures.count),
        threshold: `<= ${t.loginFailures}`,
        detail: failures.count > 0 ? `${scope}; first: ${oneLine(failures.first!)}` : scope,
      }),
      row({
        id: 'security.auth-errors',
        title: 'Unusual API calls (401/403 lines)',
        status: authLines.length > t.authErrorLines ? 'WARN' : 'PASS',
        value: String(authLines.length),
        threshold: `<= ${t.authErrorLines}`,
        detail: latest !== undefined ? `${scope}; latest: ${oneLine(latest)}` : scope,
      }),
    ];
  });

  await checklist.check('certificate', security, `Certificate ${namespace}/${input.certificate}`, async (row) => {
    const cert = await read.getCertificate({ namespace, name: input.certificate });
    const days = cert.daysUntilExpiry;
    const base = { id: 'security.certificate', title: `Certificate ${input.certificate} expiry`, threshold: `>= ${t.certificateMinDays} days` };
    const value = days === undefined ? 'no notAfter' : `${days} days left (notAfter ${cert.notAfter})`;
    if (days !== undefined && days < 0) return [row({ ...base, status: 'FAIL', value, detail: 'expired: run certificateExpiry' })];
    if (!cert.ready)
      return [
        row({ ...base, status: 'FAIL', value, detail: `not Ready: ${cert.readyReason ?? 'no Ready condition'}${cert.readyMessage ? ` (${oneLine(cert.readyMessage)})` : ''}; run certificateExpiry` }),
      ];
    if (days === undefined) return [row({ ...base, status: 'WARN', value, detail: 'Ready, but its status has no notAfter' })];
    const status: CheckStatus = days < t.certificateMinDays / 4 ? 'FAIL' : days < t.certificateMinDays ? 'WARN' : 'PASS';
    const detail =
      status === 'PASS' ? `Ready; renews ${cert.renewalTime ?? 'at an unknown time'}` : `expires soon and has not been renewed (renewal ${cert.renewalTime ?? 'unknown'}); check cert-manager`;
    return [row({ ...base, status, value, detail })];
  });

  // 数据库维护
  await checklist.check('database-size', database, `Size of database ${input.database}`, async (row) => {
    const size = await read.databaseSize({ database: input.database });
    return [row({ id: 'database.size', title: `Database ${size.database} size`, status: 'PASS', value: size.pretty, detail: `${size.bytes} bytes` })];
  });

  await checklist.check('largest-tables', database, 'The 10 largest tables', async (row) => {
    const { database: db, tables } = await read.largestTables({ limit: 10 });
    return [
      row({
        id: 'database.largest-tables',
        title: 'Largest tables (with indexes and TOAST)',
        status: 'PASS',
        value: tables[0] ? `${tables[0].schema}.${tables[0].table} ${tables[0].pretty}` : 'no tables',
        detail: `${db}: ${listed(
          tables.map((x) => `${x.schema}.${x.table} ${x.pretty}`),
          10,
        )}`,
      }),
    ];
  });

  await checkSlowStatements(checklist, database);

  await expiredSessions(checklist, input.database, input.sessionsExpiredDays, input.maxSessionsDeleted);

  await checklist.check('vacuum', database, 'VACUUM ANALYZE', async (row) => {
    // After the delete, so the space of the deleted rows is reusable and the statistics are fresh.
    const execute = input.mode === 'execute' && !checklist.run.cancelled;
    const v = await wait.vacuumAnalyze({ dryRun: !execute });
    const dead = (key: 'deadTuplesBefore' | 'deadTuplesAfter') => v.tables.reduce((n, x) => n + x[key], 0);
    return [
      row({
        id: 'database.vacuum',
        title: `VACUUM ANALYZE ${v.database}`,
        status: 'PASS',
        value: execute ? `done in ${v.durationMs} ms` : 'not run',
        detail: execute
          ? `dead tuples ${dead('deadTuplesBefore')} -> ${dead('deadTuplesAfter')} in ${v.tables.length} tables`
          : `${input.mode === 'plan' ? 'plan mode' : 'run cancelled'}: runs in execute mode; ${dead('deadTuplesBefore')} dead tuples in ${v.tables.length} tables now`,
      }),
    ];
  });

  return checklist.finish();
}

/**
 * ⚠ DELETE FROM sessions WHERE expires_at < NOW() - INTERVAL '7 days', as a change step: the dry
 * run counts, the count may move by itself (observed, outside the plan hash), the delete runs in
 * batches after approval. Wrapped in a check so a database that cannot be reached is a WARN row.
 */
async function expiredSessions(checklist: Checklist, expectedDatabase: string, olderThanDays: number, maxRows: number): Promise<CheckRow[]> {
  const stepId = 'delete-expired-sessions';
  const title = `Delete sessions expired more than ${olderThanDays} days ago`;
  return checklist.check('expired-sessions', database, title, async (row: RowBuilder) => {
    let planned: DeleteExpiredSessionsResult | undefined;
    let done: DeleteExpiredSessionsResult | undefined;
    const outcome = await checklist.run.change({
      stepId,
      title,
      plan: async () => {
        const dry = await read.deleteExpiredSessions({ olderThanDays, maxRows, dryRun: true });
        // The activity deletes in the connected database; it must be the one this run reviews.
        if (dry.database !== expectedDatabase) {
          throw ApplicationFailure.nonRetryable(`the database connection is to ${dry.database}, not ${expectedDatabase}: DATABASE_URL and the input's database disagree`, 'InvalidInput');
        }
        planned = dry;
        return {
          summary: `delete rows of ${dry.database}.public.sessions that expired more than ${olderThanDays} days ago, in batches, at most ${maxRows}`,
          details: { database: dry.database, olderThanDays, maxRows },
          needed: dry.before > 0,
          observed: { expired: dry.before, cutoff: dry.cutoff, capped: dry.capped },
        };
      },
      apply: async () => {
        done = await wait.deleteExpiredSessions({ olderThanDays, maxRows });
        return `deleted ${done.deleted} sessions expired before ${done.cutoff} in ${batches(done.batches)}; ${done.after} left`;
      },
    });
    const r = sessionsRow(outcome, checklist, stepId, olderThanDays, planned, done);
    checklist.noteChange(`${stepId}: ${outcome}: ${r.value}; ${r.detail}`);
    return [row({ id: 'database.expired-sessions', title, threshold: `expired more than ${olderThanDays} days ago`, ...r })];
  });
}

function sessionsRow(
  outcome: ChangeOutcome,
  checklist: Checklist,
  stepId: string,
  olderThanDays: number,
  planned: DeleteExpiredSessionsResult | undefined,
  done: DeleteExpiredSessionsResult | undefined,
): { status: CheckStatus; value: string; detail: string } {
  const timeline = checklist.run.timelineOf(stepId);
  const last = (event: string) => timeline.filter((e) => e.event === event).pop();
  const expired = planned?.before ?? 0;
  switch (outcome) {
    case 'applied': {
      const decided = last('decided');
      const left = done!.after;
      return {
        status: left > 0 ? 'WARN' : 'PASS',
        value: `${done!.deleted} deleted`,
        detail: `in ${batches(done!.batches)}, approved by ${decided?.by ?? 'unknown'}${left > 0 ? `; ${left} left (cap reached): run again` : ''}`,
      };
    }
    case 'not-needed':
      return { status: 'PASS', value: `${expired} expired`, detail: `no sessions expired more than ${olderThanDays} days ago` };
    case 'planned':
      return { status: 'PASS', value: `${planned!.deleted} to delete`, detail: `plan mode: nothing deleted (${expired} expired before ${planned!.cutoff}); an execute run asks for approval` };
    case 'failed':
      return { status: 'FAIL', value: 'delete failed', detail: last('failed')?.detail ?? 'the delete failed' };
    case 'rejected': {
      const decided = last('decided');
      return { status: 'WARN', value: `${expired} not deleted`, detail: decided ? `rejected by ${decided.by}: ${decided.reason ?? 'no reason'}` : `rejected: ${last('skipped')?.detail ?? ''}` };
    }
    default:
      // expired, cancelled, dependency-skipped: the rows stay for next week.
      return { status: 'WARN', value: `${expired} not deleted`, detail: `${outcome}: ${last('skipped')?.detail ?? outcome}` };
  }
}
