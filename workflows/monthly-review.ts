import type { z } from 'zod';
import { executeChild, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ForecastQueryResult } from '../activities/prometheus';
import { listed, type CheckRow, type ChecklistResult, type CheckStatus } from '../common/checklist';
import { type monthlyReviewInput, type MonthlyReviewInput } from '../common/inputs/checklists';
import { cpuCores, formatBytes, memoryBytes } from '../common/quantity';
import type { RunbookResultBase } from '../common/runbook';
import { Checklist } from './kernel/checklist';
import { errorText } from '../common/failures';
import { validateInput } from './validate-input';
import { read, wait } from './activity-proxies';
import { catalog } from '../common/catalog';

/** The restore drill streams a whole dump through psql/pg_restore and heartbeats. */

export type MonthlyReviewResult = ChecklistResult;
type MonthlyInput = z.infer<typeof monthlyReviewInput>;

interface CapacitySeries {
  id: 'cpu' | 'memory' | 'disk' | 'database';
  title: string;
  query: string;
  format: (value: number) => string;
}

const cores = (value: number) => `${value.toFixed(2)} cores`;

/**
 * The capacity series in the names cAdvisor, the kubelet and postgres_exporter give them. Label
 * values come from validated input (Kubernetes and PostgreSQL names), so they are safe in PromQL.
 * The rate window is wider than the scrape interval of backfilled history (5 min).
 */
function capacitySeries(input: { namespace: string; appDeployment: string; pvc: string; database: string }): CapacitySeries[] {
  const app = `namespace="${input.namespace}",pod=~"${input.appDeployment}-.*"`;
  return [
    { id: 'cpu', title: `CPU of ${input.appDeployment}`, query: `sum(rate(container_cpu_usage_seconds_total{${app}}[15m]))`, format: cores },
    { id: 'memory', title: `Memory of ${input.appDeployment}`, query: `sum(container_memory_working_set_bytes{${app}})`, format: formatBytes },
    { id: 'disk', title: `Volume ${input.pvc} used`, query: `sum(kubelet_volume_stats_used_bytes{namespace="${input.namespace}",persistentvolumeclaim="${input.pvc}"})`, format: formatBytes },
    { id: 'database', title: `Database ${input.database} size`, query: `sum(pg_database_size_bytes{datname="${input.database}"})`, format: formatBytes },
  ];
}

/** The days from the last point until the fitted line reaches `level`; undefined when it never does (flat or shrinking). */
function daysUntil(f: Extract<ForecastQueryResult, { available: true }>, level: number): number | undefined {
  if (f.last >= level) return 0;
  return f.slopePerDay > 0 ? (level - f.last) / f.slopePerDay : undefined;
}

/**
 * 每月检查清单. What it does: catalog.monthlyReview.
 * rollbackDeployment runs as a child run in plan mode: the emergency plan is checked, production
 * is never changed.
 */
export async function monthlyReview(raw: MonthlyReviewInput): Promise<MonthlyReviewResult> {
  const input = validateInput(catalog.monthlyReview, raw);
  const { namespace, appDeployment, pvc, database } = input;
  const checklist = await Checklist.begin(catalog.monthlyReview, input, ['capacity', 'cost', 'dr-drill', 'emergency-plan']);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    databases: [database],
    s3Prefixes: [input.backupPrefix],
    names: [
      { name: appDeployment, what: 'deployment' },
      { name: pvc, what: 'persistentvolumeclaim' },
    ],
  });
  const now = new Date().toISOString();

  // 容量规划
  await checkCapacity(checklist, input);

  // 成本优化
  await checkCost(checklist, input, now);

  // 灾难恢复演练
  await checkRestoreDrill(checklist, input);

  // 验证应急响应计划
  await checkEmergencyPlan(checklist, input);

  return checklist.finish();
}

/** 容量规划: each capacity series' trend and forecast against what the app and the volume have. */
export function checkCapacity(checklist: Checklist, input: MonthlyInput): Promise<CheckRow[]> {
  const { namespace, appDeployment, pvc } = input;
  const t = checklist.thresholds;
  return checklist.check('capacity', '容量规划', `${input.lookbackDays}-day trends and a ${input.horizonDays}-day forecast`, async (row) => {
    const [snapshot, { claims }] = await Promise.all([read.snapshotNamespaceConfig({ namespace }), read.listPersistentVolumeClaims({ namespace })]);
    const app = snapshot.deployments.find((d) => d.name === appDeployment);
    const limitOf = (resource: 'cpu' | 'memory') => {
      if (!app) return undefined;
      const perPod = app.containers.map((c) => (resource === 'cpu' ? cpuCores(c.limits?.cpu) : memoryBytes(c.limits?.memory)));
      return perPod.every((v) => v !== undefined) && perPod.length > 0 ? perPod.reduce((a, b) => a! + b!, 0)! * (app.replicas ?? 1) : undefined;
    };
    const volumeBytes = memoryBytes(claims.find((c) => c.name === pvc)?.capacity);
    const capacityOf: Record<CapacitySeries['id'], { bytes?: number; percent: number; what: string }> = {
      cpu: { bytes: limitOf('cpu'), percent: t.cpuPercent, what: `the CPU limits of ${appDeployment} (all replicas)` },
      memory: { bytes: limitOf('memory'), percent: t.memoryPercent, what: `the memory limits of ${appDeployment} (all replicas)` },
      disk: { bytes: volumeBytes, percent: t.diskPercent, what: `the capacity of ${pvc}` },
      database: { bytes: volumeBytes, percent: t.diskPercent, what: `the capacity of ${pvc}, which holds it` },
    };
    const series = capacitySeries(input);
    const forecasts = await Promise.all(series.map((s) => read.forecastQuery({ query: s.query, lookbackDays: input.lookbackDays, horizonDays: input.horizonDays, stepSeconds: 3600 })));
    return series.map((s, i) => {
      const f = forecasts[i]!;
      const id = `capacity.${s.id}`;
      if (!f.available) return row({ id, title: s.title, status: 'WARN', value: 'no history', threshold: '', detail: f.reason });
      const capacity = capacityOf[s.id];
      const trend = `${s.format(f.first)} → ${s.format(f.last)} over ${f.daysOfData.toFixed(0)} days (${f.slopePerDay >= 0 ? '+' : ''}${s.format(f.slopePerDay)}/day, r² ${f.r2.toFixed(2)})`;
      const value = `${s.format(f.last)} now, ${s.format(f.forecast)} in ${input.horizonDays} days`;
      if (capacity.bytes === undefined) return row({ id, title: s.title, status: 'WARN', value, detail: `${trend}; nothing to compare with: ${capacity.what} unknown` });
      const level = (capacity.bytes * capacity.percent) / 100;
      const percentThen = (f.forecast / capacity.bytes) * 100;
      const status: CheckStatus = f.forecast <= level ? 'PASS' : 'WARN';
      const days = daysUntil(f, level);
      return row({
        id,
        title: s.title,
        status,
        value,
        threshold: `<= ${capacity.percent}% of ${s.format(capacity.bytes)}`,
        detail: `${trend}; ${percentThen.toFixed(0)}% of ${capacity.what} in ${input.horizonDays} days${status === 'WARN' && days !== undefined ? `: reaches ${capacity.percent}% in about ${Math.floor(days)} days, plan the scale-up` : ''}`,
      });
    });
  });
}

/** 成本优化: unused resources, old ReplicaSets and backups beyond retention. */
export function checkCost(checklist: Checklist, input: MonthlyInput, now: string): Promise<CheckRow[]> {
  const { namespace, backupPrefix } = input;
  const t = checklist.thresholds;
  return checklist.check('cost', '成本优化', 'Unused resources and old backups', async (row) => {
    const [unused, backups] = await Promise.all([
      read.listUnusedResources({ namespace }),
      read.deleteOldBackups({ prefix: backupPrefix, olderThanDays: t.backupRetentionDays, maxObjects: 100_000, dryRun: true, now }),
    ]);
    // Kept for rollbacks (revisionHistoryLimit, 10 by default); more than that per Deployment only fills etcd.
    const mostOldReplicaSets = Math.max(0, ...unused.oldReplicaSets.map((d) => d.count));
    const found = (id: string, title: string, names: string[], detail: string): CheckRow =>
      row({ id, title, status: names.length === 0 ? 'PASS' : 'WARN', value: String(names.length), threshold: '0', detail: names.length === 0 ? 'none' : `${listed(names)}: ${detail}` });
    return [
      found(
        'cost.unmounted-claims',
        'PVCs mounted by no pod',
        unused.unmountedClaims.map((c) => `${c.name} (${c.capacity ?? c.requested ?? '?'})`),
        'storage paid for and unused; delete or reattach',
      ),
      found(
        'cost.scaled-to-zero',
        'Deployments at 0 replicas',
        unused.scaledToZeroDeployments.map((d) => d.name),
        'remove if retired',
      ),
      found(
        'cost.services-without-endpoints',
        'Services without ready endpoints',
        unused.servicesWithoutReadyEndpoints.map((s) => s.name),
        'they route nowhere; remove or fix the selector',
      ),
      row({
        id: 'cost.old-replicasets',
        title: 'Old ReplicaSets kept by one Deployment',
        status: mostOldReplicaSets <= t.oldReplicaSets ? 'PASS' : 'WARN',
        value: String(mostOldReplicaSets),
        threshold: `<= ${t.oldReplicaSets}`,
        detail: unused.oldReplicaSets.map((d) => `${d.deployment}: ${d.count} (current revision ${d.currentRevision})`).join(', ') || 'none',
      }),
      row({
        id: 'cost.old-backups',
        title: `Backups older than ${t.backupRetentionDays} days`,
        status: backups.old === 0 ? 'PASS' : 'WARN',
        value: String(backups.old),
        threshold: '0',
        detail:
          backups.old === 0
            ? `none of ${backups.scanned} under ${backupPrefix}`
            : `${backups.old} of ${backups.scanned} under ${backupPrefix} before ${backups.cutoff}; run diskPressure or add an S3 lifecycle rule`,
      }),
    ];
  });
}

/** 灾难恢复演练: the newest backup restored into a scratch database, verified, dropped, timed. */
export function checkRestoreDrill(checklist: Checklist, input: MonthlyInput): Promise<CheckRow[]> {
  const { backupPrefix } = input;
  return checklist.check('dr-drill', '灾难恢复演练', 'Restore the newest backup into a scratch database', async (row) => {
    if (!input.drill) return [row({ id: 'dr.restore', title: 'Restore drill', status: 'WARN', value: 'not run', detail: 'the drill was turned off for this run (drill: false)' })];
    const newest = await read.listNewestObjects({ prefix: backupPrefix, limit: 1 });
    const backup = newest.objects[0];
    if (!backup) return [row({ id: 'dr.restore', title: 'Restore drill', status: 'FAIL', value: 'no backup', detail: `nothing under ${backupPrefix} to restore` })];
    let drill: Awaited<ReturnType<Activities['restoreDumpIntoScratchDatabase']>>;
    try {
      drill = await wait.restoreDumpIntoScratchDatabase({ key: backup.key });
    } catch (err) {
      // A backup that cannot be restored is the finding the drill exists for.
      return [
        row({ id: 'dr.restore', title: 'Restore drill', status: 'FAIL', value: 'failed', threshold: 'restored, verified, dropped', detail: `restoring ${backup.key} failed: ${errorText(err)}` }),
      ];
    }
    const status: CheckStatus = !drill.verified ? 'FAIL' : drill.dropped ? 'PASS' : 'WARN';
    return [
      row({
        id: 'dr.restore',
        title: 'Restore drill',
        status,
        value: `${(drill.durationMs / 1000).toFixed(1)} s`,
        threshold: 'restored, verified, dropped',
        detail: `${drill.key} (${drill.format}, ${formatBytes(drill.bytes)}) → ${drill.tables.length} tables, ${drill.totalRows} rows in ${drill.scratchDatabase}${drill.dropped ? ', dropped' : ', NOT dropped'}${drill.problems.length ? `; problems: ${drill.problems.join('; ')}` : ''}`,
      }),
    ];
  });
}

/** 验证应急响应计划: can the app be rolled back right now? A plan-mode child run answers without changing anything. */
export function checkEmergencyPlan(checklist: Checklist, input: MonthlyInput): Promise<CheckRow[]> {
  return checklist.check('emergency-plan', '灾难恢复演练', `rollbackDeployment of ${input.appDeployment} in plan mode`, async (row) => {
    const id = 'emergency.rollback-plan';
    const title = `Rollback plan for ${input.appDeployment}`;
    let planned: RunbookResultBase;
    try {
      planned = await executeChild<(args: Record<string, unknown>) => Promise<RunbookResultBase>>('rollbackDeployment', {
        workflowId: `${workflowInfo().workflowId}/rollbackDeployment-plan`,
        args: [{ namespace: input.namespace, deployment: input.appDeployment, mode: 'plan', severity: 'P3', startedBy: `monthlyReview (${input.startedBy})` }],
      });
    } catch (err) {
      return [row({ id, title, status: 'FAIL', value: 'failed', detail: `the rollback runbook failed in plan mode: ${errorText(err)}` })];
    }
    const step = planned.plan.find((p) => p.change.needed);
    return [
      row({
        id,
        title,
        status: step ? 'PASS' : 'WARN',
        value: step ? 'ready' : 'nothing to roll back to',
        threshold: 'a previous revision to roll back to',
        detail: step ? step.change.summary : `${planned.summary}; keep older revisions (revisionHistoryLimit) so a rollback is possible`,
      }),
    ];
  });
}
