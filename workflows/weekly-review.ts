import type { ManualQueryName } from '../activities/prometheus';
import { above, below, listed, sharesOfLimit, type CheckRow, type ChecklistResult, type CheckStatus } from '../common/checklist';
import type { WeeklyReviewInput } from '../common/inputs/checklists';
import { Checklist } from './kernel/checklist';
import { errorText } from '../common/failures';
import { checkSlowStatements, oneLine } from './slow-statements-check';
import { patched } from '@temporalio/workflow';
import { checkExpiredSessions } from './weekly-review-sessions';
import { checkKeysWithoutTtl, weeklyRedisTtlPatch } from './weekly-review-redis';
import { checkDatabaseSize, checkLargestTables, checkVacuum, database, type WeeklyInput } from './weekly-review-database';
import { validateInput } from './validate-input';
import { read } from './activity-proxies';
import { catalog } from '../common/catalog';

export type WeeklyReviewResult = ChecklistResult;

const performance = '性能指标审查';
const security = '安全审计';

/** 401/403 as whole numbers: the manual's `grep "403\|401"` would also count "took 1401ms". */
const authErrorPattern = /\b(401|403)\b/;

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * 每周检查清单. What it does: catalog.weeklyReview.
 * VACUUM ANALYZE runs in execute mode only; the report (PASS/WARN/FAIL per check) goes to S3.
 */
export async function weeklyReview(raw: WeeklyReviewInput): Promise<WeeklyReviewResult> {
  const input = validateInput(catalog.weeklyReview, raw);
  const { namespace } = input;
  // The Redis row (and its activities) only on runs begun since the patch.
  const withRedisTtl = patched(weeklyRedisTtlPatch);
  const checklist = await Checklist.begin(catalog.weeklyReview, input, [
    'performance',
    'usage',
    'app-logs',
    'certificate',
    'database-size',
    'largest-tables',
    'slow-statements',
    'delete-expired-sessions',
    'expired-sessions',
    'vacuum',
    ...(withRedisTtl ? ['redis-keys-ttl'] : []),
  ]);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    databases: [input.database],
    names: [
      { name: input.appDeployment, what: 'deployment' },
      { name: input.certificate, what: 'certificate' },
    ],
  });

  // 性能指标审查
  await checkPerformance(checklist, input);
  await checkAppUsage(checklist, input);

  // 安全审计
  await checkAppLogs(checklist, input);
  await checkCertificate(checklist, input);

  // 数据库维护
  await checkDatabaseSize(checklist, input);
  await checkLargestTables(checklist);
  await checkSlowStatements(checklist, database);
  await checkExpiredSessions(checklist, database, input.database, input.sessionsExpiredDays, input.maxSessionsDeleted);
  await checkVacuum(checklist, input);

  // Redis优化 → 设置过期时间
  if (withRedisTtl) await checkKeysWithoutTtl(checklist, input);

  return checklist.finish();
}

/** A Prometheus query of the manual's, its threshold and how its value is shown. */
interface QueryReview {
  id: string;
  title: string;
  name: ManualQueryName;
  threshold: string;
  status: (v: number) => CheckStatus;
  show: (v: number) => string;
}

/** 性能指标审查: the manual's PromQL (监控和告警 > 查询示例) over the configured window. */
export function checkPerformance(checklist: Checklist, input: WeeklyInput): Promise<CheckRow[]> {
  const { window } = input;
  const t = checklist.thresholds;
  return checklist.check('performance', performance, `Prometheus: the manual's queries over ${window}`, async (row) => {
    const reviews: QueryReview[] = [
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
          return row({ id: r.id, title: r.title, status: 'WARN', value: 'not measured', threshold: r.threshold, detail: `Prometheus could not answer: ${errorText(err)}` });
        }
      }),
    );
  });
}

/** CPU and memory of the app against its limits, from the metrics API. */
export function checkAppUsage(checklist: Checklist, input: WeeklyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  const t = checklist.thresholds;
  return checklist.check('usage', performance, `CPU and memory of ${input.appDeployment} against its limits (metrics API)`, async (row) => {
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
}

/** 安全审计: failed logins and 401/403 lines in the app's newest logs. */
export function checkAppLogs(checklist: Checklist, input: WeeklyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  const t = checklist.thresholds;
  return checklist.check('app-logs', security, `Login failures and 401/403 lines in the logs of ${input.appDeployment}`, async (row) => {
    // The newest 256 KiB; the log goes to S3 evidence, the history keeps counts (Checklist.scanLogs).
    const logs = await checklist.scanLogs(namespace, input.appDeployment, { maxBytes: 262_144 }, { loginFailures: /login failed/i, authErrors: authErrorPattern });
    const scope = `${logs.pod}: ${logs.lines} lines${logs.truncated ? ' (the newest 256 KiB)' : ''}${logs.evidenceKey ? ` (log: ${logs.evidenceKey})` : ''}`;
    const failures = logs.matches.loginFailures!;
    const authErrors = logs.matches.authErrors!;
    const latest = authErrors.last;
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
        status: authErrors.count > t.authErrorLines ? 'WARN' : 'PASS',
        value: String(authErrors.count),
        threshold: `<= ${t.authErrorLines}`,
        detail: latest !== undefined ? `${scope}; latest: ${oneLine(latest)}` : scope,
      }),
    ];
  });
}

/** The TLS certificate: Ready, and days left against the threshold. */
export function checkCertificate(checklist: Checklist, input: WeeklyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  const t = checklist.thresholds;
  return checklist.check('certificate', security, `Certificate ${namespace}/${input.certificate}`, async (row) => {
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
}
