import { atMost, hoursBetween, sharesOfLimit, type CheckRow, type ChecklistResult } from '../common/checklist';
import { dailyChecks, type DailyCheck, type DailyHealthCheckInput } from '../common/inputs/checklists';
import { Checklist, type LogScan } from './kernel/checklist';
import { validateInput } from './validate-input';
import { dfLine, dfUsePercent } from './exec-output';
import { checkSlowStatements } from './slow-statements-check';
import { checkAutoscalers, checkIngress, checkPods, checkServices, checkVolumeClaims, type DailyInput } from './daily-health-check-system';
import { read, wait } from './activity-proxies';
import { catalog } from '../common/catalog';

export type DailyHealthCheckResult = ChecklistResult;

/**
 * 每日检查清单. What it does: catalog.dailyHealthCheck.
 * The report (PASS/WARN/FAIL per check) goes to S3. `slow-statements` is there for the latency
 * alert, which asks for usage plus slow queries.
 */
export async function dailyHealthCheck(raw: DailyHealthCheckInput): Promise<DailyHealthCheckResult> {
  const input = validateInput(catalog.dailyHealthCheck, raw);
  const { namespace } = input;
  const selected = new Set<DailyCheck>(input.only ?? dailyChecks);
  const checklist = await Checklist.begin(catalog.dailyHealthCheck, input, [...selected]);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    s3Prefixes: [input.backupPrefix],
    names: [input.appDeployment, input.databaseDeployment, input.redisDeployment].map((name) => ({ name, what: 'deployment' })),
  });
  const now = Date.now();

  // 系统健康检查
  if (selected.has('pods')) await checkPods(checklist, input);
  if (selected.has('services')) await checkServices(checklist, input);
  if (selected.has('ingress')) await checkIngress(checklist, input);
  if (selected.has('hpa')) await checkAutoscalers(checklist, input);
  if (selected.has('pvc')) await checkVolumeClaims(checklist, input);

  // 资源使用检查
  if (selected.has('usage')) await checkUsage(checklist, input);
  if (selected.has('database-volume')) await checkDatabaseVolume(checklist, input);

  // 日志检查
  if (selected.has('logs')) await checkLogs(checklist, input);

  // 备份验证
  if (selected.has('backups')) await checkBackups(checklist, input, now);

  // Asked for by name only (the latency alert's subset): the weekly review reads it every week.
  if (selected.has('slow-statements')) await checkSlowStatements(checklist, '资源使用检查');

  return checklist.finish();
}

/** The daily checklist's usage check. */
export function checkUsage(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  const t = checklist.thresholds;
  return checklist.check('usage', '资源使用检查', 'Pod and node usage (metrics API)', async (row) => {
    const [podUsage, nodeUsage] = await Promise.all([read.getPodUsage({ namespace }), read.getNodeUsage()]);
    const rows: CheckRow[] = [];
    if (!podUsage.available) {
      rows.push(row({ id: 'usage.pods', title: 'Pod usage', status: 'WARN', value: 'unavailable', detail: podUsage.reason }));
    } else {
      for (const [resource, limit] of [
        ['cpu', t.cpuPercent],
        ['memory', t.memoryPercent],
      ] as const) {
        const { top } = sharesOfLimit(podUsage.pods, resource);
        rows.push(
          row({
            id: `usage.pods.${resource}`,
            title: `Highest pod ${resource} use of its limit`,
            status: top ? atMost(top.percent, limit, 'WARN') : 'PASS',
            value: top ? `${top.percent}%` : 'no limits set',
            threshold: `<= ${limit}%`,
            detail: top ? top.where : `${podUsage.pods.length} pods measured`,
          }),
        );
      }
    }
    if (!nodeUsage.available) {
      rows.push(row({ id: 'usage.nodes', title: 'Node usage', status: 'WARN', value: 'unavailable', detail: nodeUsage.reason }));
    } else {
      for (const [resource, limit] of [
        ['cpu', t.cpuPercent],
        ['memory', t.memoryPercent],
      ] as const) {
        const top = [...nodeUsage.nodes]
          .filter((n) => (resource === 'cpu' ? n.cpuPercent : n.memoryPercent) !== undefined)
          .sort((a, b) => (resource === 'cpu' ? b.cpuPercent! - a.cpuPercent! : b.memoryPercent! - a.memoryPercent!))[0];
        const percent = top && (resource === 'cpu' ? top.cpuPercent! : top.memoryPercent!);
        rows.push(
          row({
            id: `usage.nodes.${resource}`,
            title: `Highest node ${resource} use`,
            status: top ? atMost(percent!, limit, 'WARN') : 'WARN',
            value: top ? `${percent}%` : 'unknown',
            threshold: `<= ${limit}%`,
            detail: top ? top.name : 'no node reports allocatable resources',
          }),
        );
      }
    }
    return rows;
  });
}

/** The daily checklist's database-volume check. */
export function checkDatabaseVolume(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  const t = checklist.thresholds;
  return checklist.check('database-volume', '资源使用检查', `Database volume (df -h ${input.dataDir})`, async (row) => {
    const result = await wait.execInPod({ namespace, deployment: input.databaseDeployment, command: ['df', '-h', input.dataDir], timeoutSeconds: 60, maxOutputBytes: 65_536 });
    const line = dfLine(input.dataDir, result);
    const percent = dfUsePercent(line);
    return [
      row({
        id: 'disk.database',
        title: 'Database volume use',
        status: percent === undefined ? 'WARN' : atMost(percent, t.diskPercent),
        value: percent === undefined ? 'unknown' : `${percent}%`,
        threshold: `<= ${t.diskPercent}%`,
        detail: percent === undefined ? `no Use% in "${line}"` : percent > t.diskPercent ? `${line}; run diskPressure` : line,
      }),
    ];
  });
}

/** The daily checklist's logs check. */
export function checkLogs(checklist: Checklist, input: DailyInput): Promise<CheckRow[]> {
  const { namespace } = input;
  const t = checklist.thresholds;
  return checklist.check('logs', '日志检查', 'ERROR lines in the latest logs', async (row) => {
    const scan = (deployment: string, tailLines: number, pattern: RegExp) => checklist.scanLogs(namespace, deployment, { tailLines, maxBytes: 262_144 }, { problems: pattern });
    const [app, database, redis] = await Promise.all([
      scan(input.appDeployment, input.appLogLines, /\bERROR\b/),
      scan(input.databaseDeployment, input.serviceLogLines, /\b(ERROR|FATAL|PANIC)\b/),
      scan(input.redisDeployment, input.serviceLogLines, /\b(ERROR|FATAL|PANIC)\b/),
    ]);
    const appErrors = app.matches.problems!;
    const detail = (logs: LogScan) => `${logs.pod}: ${logs.matches.problems!.first ?? `${logs.lines} lines read`}${logs.evidenceKey ? ` (log: ${logs.evidenceKey})` : ''}`;
    const serviceRow = (id: string, name: string, logs: LogScan) => {
      const problems = logs.matches.problems!;
      return row({
        id,
        title: `${name} errors in the last ${input.serviceLogLines} lines`,
        status: problems.count === 0 ? 'PASS' : 'WARN',
        value: String(problems.count),
        threshold: '0',
        detail: detail(logs),
      });
    };
    return [
      row({
        id: 'logs.app-errors',
        title: `App ERROR lines in the last ${input.appLogLines}`,
        status: atMost(appErrors.count, t.errorLogLines),
        value: String(appErrors.count),
        threshold: `<= ${t.errorLogLines}`,
        detail: detail(app),
      }),
      serviceRow('logs.database', 'Database', database),
      serviceRow('logs.redis', 'Redis', redis),
    ];
  });
}

/** The daily checklist's backups check. */
export function checkBackups(checklist: Checklist, input: DailyInput, now: number): Promise<CheckRow[]> {
  const { backupPrefix } = input;
  const t = checklist.thresholds;
  return checklist.check('backups', '备份验证', `Backups under ${backupPrefix}`, async (row) => {
    const [newest, latest] = await Promise.all([read.listNewestObjects({ prefix: backupPrefix, limit: input.newestBackups }), read.verifyDumpObject({ key: `${backupPrefix}latest.sql` })]);
    const first = newest.objects[0];
    const ageHours = first ? hoursBetween(first.lastModified, now) : undefined;
    return [
      row({
        id: 'backups.newest',
        title: 'Age of the newest backup',
        status: ageHours === undefined ? 'FAIL' : atMost(ageHours, t.backupMaxAgeHours),
        value: ageHours === undefined ? 'no backups' : `${ageHours.toFixed(1)} h`,
        threshold: `<= ${t.backupMaxAgeHours} h`,
        detail: first
          ? `newest ${newest.objects.length} of ${newest.total}: ${newest.objects.map((o) => `${o.key} (${o.size} B, ${o.lastModified})`).join(', ')}`
          : `nothing under ${backupPrefix}: backups are not running`,
      }),
      row({
        id: 'backups.latest',
        title: `${backupPrefix}latest.sql is a valid dump`,
        status: latest.exists && latest.valid ? 'PASS' : 'FAIL',
        value: latest.exists ? `${latest.size} B, ${latest.format ?? 'unknown'} format` : 'missing',
        threshold: 'non-empty, a pg_dump header',
        detail: latest.valid ? `written ${latest.lastModified ?? 'at an unknown time'}` : (latest.problem ?? 'missing'),
      }),
    ];
  });
}
