import type { z } from 'zod';
import type { PvcSummary } from '../activities/kubernetes-storage';
import type { DeleteOldBackupsResult } from '../activities/s3';
import { type DiskPressureInput, type diskPressureInput } from '../common/inputs/disk-pressure';
import { memoryBytes, memoryQuantity } from '../common/quantity';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import type { PromisedEffect } from './kernel/effect-check';
import { RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
import { checkedOutput } from './exec-output';
import { countOf, diskState, largestText, volumeOf, type DiskPressureState, type Volume } from './disk-pressure-volume';
import { validateInput } from './validate-input';
import { read, wait, write } from './activity-proxies';
import { catalog } from '../common/catalog';

export type { DiskPressureState, DiskUsage } from './disk-pressure-volume';

/** find/du over a large volume, S3 listings and bulk deletes may take a while; they heartbeat. */

export interface DiskPressureResult extends RunbookResultBase {
  before: DiskPressureState;
  after?: DiskPressureState;
  /** The size the PVC is expanded to (computed once from the diagnosis) when its StorageClass allows it. */
  targetSize?: string;
  /** Why the PVC is not expanded, when its StorageClass does not allow it. */
  expansionRefused?: string;
}

/** Deletes at most $3 of the files find lists, printing each one deleted. Arguments are positional, never spliced into the script. */
const deleteLogsScript = `find "$1" -type f -name '*.log' -mtime +"$2" -print | head -n "$3" | while IFS= read -r f; do rm -f -- "$f" && printf '%s\\n' "$f"; done`;

type Input = z.infer<typeof diskPressureInput>;

/** The PVC's size now and the one to expand to; why it cannot be expanded, when its StorageClass does not allow it. */
interface Expansion {
  currentSize?: string;
  currentBytes?: number;
  targetSize?: string;
  expansionRefused?: string;
}

/** The run's step ids. */
export type DiskPressureStep = 'pvc' | 'disk-usage' | 'largest-directories' | 'old-logs' | 'old-backups' | 'delete-old-logs' | 'expand-pvc' | 'delete-old-backups' | 'verify';

/**
 * 场景4 磁盘空间不足. What it does: catalog.diskPressure.
 * The expansion target is computed once from the diagnosis (a retry never expands twice); after the
 * changes everything is read again so the report shows the effect.
 */
export async function diskPressure(raw: DiskPressureInput): Promise<DiskPressureResult> {
  const input = validateInput(catalog.diskPressure, raw);
  const { namespace, deployment, container, pvc } = input;
  const run = await RunbookRun.begin<DiskPressureStep>(catalog.diskPressure, input, [
    'pvc',
    'disk-usage',
    'largest-directories',
    'old-logs',
    'old-backups',
    'delete-old-logs',
    'expand-pvc',
    'delete-old-backups',
    'verify',
  ]);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    backupDeletions: [{ prefix: input.backupPrefix, olderThanDays: input.backupsOlderThanDays }],
    names: [{ name: deployment, what: 'deployment' }, { name: pvc, what: 'persistentvolumeclaim' }, ...(container ? [{ name: container, what: 'container' }] : [])],
  });
  // The workflow's deterministic time: backup ages are measured from it in plan, apply and verify.
  const v = volumeOf(run, input, new Date().toISOString());

  const { claim, before } = await diagnose(v);
  await deleteOldLogsStep(v);
  const expansion = expansionOf(input, claim);
  await expandPvcStep(v, claim, expansion);
  await deleteOldBackupsStep(v);
  const after = await verifyAfter(v, before, expansion);
  return reportDisk(v, claim, before, expansion, after);
}

/** Diagnosis (read-only): the PVC, df and du of the volume, the old logs and the old backups. */
async function diagnose(v: Volume): Promise<{ claim: PvcSummary; before: DiskPressureState }> {
  const { run, input, readPvc, readDf, readDu, readOldLogs, dryBackups } = v;
  const { namespace, pvc, dataDir, logDir, logsOlderThanDays, backupsOlderThanDays, backupPrefix } = input;
  const claim = await run.read(
    'pvc',
    `PersistentVolumeClaim ${namespace}/${pvc}`,
    readPvc,
    (c) =>
      `${c.phase}, capacity ${c.capacity ?? 'unknown'}, requested ${c.requested ?? 'unknown'}, StorageClass ${c.storageClass ?? '(none)'} (${c.allowsExpansion ? 'allows expansion' : 'does not allow expansion'})`,
  );
  const df = await run.read('disk-usage', `df -h ${dataDir}`, readDf, (line) => line);
  const largest = await run.read('largest-directories', `du -k -d 1 ${dataDir}`, readDu, largestText);
  const oldLogs = await run.read('old-logs', `*.log under ${logDir} older than ${logsOlderThanDays} days`, readOldLogs, (o) => `${countOf(o)} files`);
  const oldBackups = await run.read(
    'old-backups',
    `Backups under ${backupPrefix} older than ${backupsOlderThanDays} days`,
    dryBackups,
    (b) => `${b.old} of ${b.scanned} objects older than ${b.cutoff}${b.protected.length ? ` (kept: ${b.protected.join(', ')})` : ''}`,
  );
  return { claim, before: diskState(claim, df, largest, countOf(oldLogs), oldBackups.old) };
}

/** ⚠ Delete the log files older than logsOlderThanDays, at most maxFilesDeleted. */
async function deleteOldLogsStep(v: Volume): Promise<void> {
  const { run, input, exec, readOldLogs } = v;
  const { logDir, logsOlderThanDays } = input;
  await run.change({
    stepId: 'delete-old-logs',
    title: `Delete *.log under ${logDir} older than ${logsOlderThanDays} days`,
    plan: async () => {
      const found = await readOldLogs();
      const n = countOf(found);
      return {
        summary: `delete ${Math.min(n, input.maxFilesDeleted)} *.log files under ${logDir} older than ${logsOlderThanDays} days (find -mtime +${logsOlderThanDays}), at most ${input.maxFilesDeleted}`,
        needed: n > 0,
        details: { files: found.files },
        observed: { found: n, capped: n > input.maxFilesDeleted },
      };
    },
    apply: async () => {
      const r = await exec(['sh', '-c', deleteLogsScript, 'sh', logDir, String(logsOlderThanDays), String(input.maxFilesDeleted)], 600);
      const deleted = checkedOutput(`deleting old logs under ${logDir}`, r)
        .split('\n')
        .filter((l) => l !== '').length;
      return `deleted ${deleted} *.log files under ${logDir} older than ${logsOlderThanDays} days${deleted >= input.maxFilesDeleted ? ' (cap reached, files may remain)' : ''}`;
    },
  });
}

/** Computed once from the diagnosis: a retried apply, a re-plan or a replay aims at the same size. */
function expansionOf(input: Input, claim: PvcSummary): Expansion {
  const { namespace, pvc } = input;
  const currentSize = claim.requested ?? claim.capacity;
  const currentBytes = memoryBytes(currentSize);
  const targetSize = input.expandTo ?? (currentBytes ? memoryQuantity(currentBytes * 1.5) : undefined);
  const expansionRefused = claim.allowsExpansion
    ? undefined
    : `persistentvolumeclaims/${pvc} in namespace ${namespace} cannot be expanded: its StorageClass ${claim.storageClass ?? '(none)'} does not allow volume expansion (allowVolumeExpansion is not true)`;
  return { currentSize, currentBytes, targetSize, expansionRefused };
}

/** ⚠ Expand the PVC to the target size, only when its StorageClass allows it. */
async function expandPvcStep(v: Volume, claim: PvcSummary, expansion: Expansion): Promise<void> {
  const { run, input } = v;
  const { namespace, pvc } = input;
  const { currentSize, currentBytes, targetSize, expansionRefused } = expansion;
  await run.change({
    stepId: 'expand-pvc',
    title: `Expand the PVC ${namespace}/${pvc}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      if (expansionRefused) return { summary: expansionRefused, needed: false };
      if (!targetSize) return { summary: `persistentvolumeclaims/${pvc} has no size to expand from`, needed: false };
      if ((memoryBytes(targetSize) ?? 0) < (currentBytes ?? 0)) return { summary: `persistentvolumeclaims/${pvc} requests ${currentSize}; ${targetSize} would shrink it`, needed: false };
      const dry = await read.expandPersistentVolumeClaim({ namespace, name: pvc, size: targetSize, dryRun: true });
      return {
        summary: `expand persistentvolumeclaims/${pvc} in namespace ${namespace} ${currentSize} -> ${targetSize} (StorageClass ${claim.storageClass})`,
        details: { from: currentSize, to: targetSize },
        needed: dry.changed,
        observed: { requested: dry.before.requested ?? null },
      };
    },
    apply: async () => {
      const done = await write.expandPersistentVolumeClaim({ namespace, name: pvc, size: targetSize! });
      return done.changed ? `${done.message}` : `persistentvolumeclaims/${pvc} already requests ${done.after.requested}`;
    },
  });
}

/** ⚠ Delete the backups older than backupsOlderThanDays, at most maxBackupsDeleted; latest.sql and newer ones are kept. */
async function deleteOldBackupsStep(v: Volume): Promise<void> {
  const { run, input, now, dryBackups } = v;
  const { backupPrefix, backupsOlderThanDays } = input;
  await run.change({
    stepId: 'delete-old-backups',
    title: `Delete backups under ${backupPrefix} older than ${backupsOlderThanDays} days`,
    plan: async () => {
      const dry = await dryBackups();
      return {
        summary: `delete ${dry.wouldDelete ?? 0} objects under s3 ${backupPrefix} older than ${backupsOlderThanDays} days (before ${dry.cutoff}), at most ${input.maxBackupsDeleted}; latest.sql and newer backups kept`,
        needed: (dry.wouldDelete ?? 0) > 0,
        details: { keys: dry.keys },
        observed: { old: dry.old, capped: dry.capped },
      };
    },
    apply: async () => {
      const done: DeleteOldBackupsResult = await wait.deleteOldBackups({ prefix: backupPrefix, olderThanDays: backupsOlderThanDays, maxObjects: input.maxBackupsDeleted, now });
      return `deleted ${done.deleted ?? 0} backups under ${backupPrefix} older than ${backupsOlderThanDays} days${done.capped ? ' (cap reached, old backups remain)' : ''}`;
    },
  });
}

/**
 * Execute mode: everything the diagnosis read, read again after the changes, and what each applied
 * step promised: old logs and old backups gone (up to the caps), the PVC requesting its new size.
 */
async function verifyAfter(v: Volume, before: DiskPressureState, expansion: Expansion): Promise<DiskPressureState | undefined> {
  const { run, input, readPvc, readDf, readDu, readOldLogs, dryBackups } = v;
  const { namespace, pvc, logDir, logsOlderThanDays, backupPrefix, backupsOlderThanDays } = input;
  if (input.mode !== 'execute') return undefined;
  const effects: Array<PromisedEffect<DiskPressureState>> = [];
  if (run.applied('delete-old-logs')) {
    const left = Math.max(0, before.oldLogs - input.maxFilesDeleted);
    effects.push({
      promised: `${left === 0 ? 'no' : `at most ${left}`} *.log files under ${logDir} older than ${logsOlderThanDays} days`,
      holds: (s) => s.oldLogs <= left,
      found: (s) => `${s.oldLogs} are left`,
    });
  }
  const { targetSize } = expansion;
  if (run.applied('expand-pvc') && targetSize)
    effects.push({
      promised: `PVC ${namespace}/${pvc} requesting ${targetSize}`,
      holds: (s) => (memoryBytes(s.pvc.requested) ?? 0) >= memoryBytes(targetSize)!,
      found: (s) => `it requests ${s.pvc.requested ?? 'unknown'} (capacity ${s.pvc.capacity ?? 'unknown'})`,
    });
  if (run.applied('delete-old-backups')) {
    const left = Math.max(0, before.oldBackups - input.maxBackupsDeleted);
    effects.push({
      promised: `${left === 0 ? 'no' : `at most ${left}`} backups under ${backupPrefix} older than ${backupsOlderThanDays} days`,
      holds: (s) => s.oldBackups <= left,
      found: (s) => `${s.oldBackups} are left`,
    });
  }
  return run.verify('verify', 'PVC, disk usage, old logs and old backups after the changes', {
    read: async () => {
      const [c, d, l, o, b] = await Promise.all([readPvc(), readDf(), readDu(), readOldLogs(), dryBackups()]);
      return diskState(c, d, l, countOf(o), b.old);
    },
    describe: (s) => `PVC requests ${s.pvc.requested ?? 'unknown'}, ${s.disk.df}, ${s.oldLogs} old log files, ${s.oldBackups} old backups`,
    effects,
    before: 'same read',
  });
}

/** The incident report's solution: what each step did, or its outcome. */
function solutionText(input: Input, before: DiskPressureState, expansion: Expansion, outcome: (stepId: DiskPressureStep) => ChangeOutcome | undefined): string {
  const { namespace, pvc, logDir, logsOlderThanDays, backupsOlderThanDays, backupPrefix } = input;
  const { currentSize, targetSize, expansionRefused } = expansion;
  const solution: string[] = [];
  solution.push(
    outcome('delete-old-logs') === 'applied'
      ? `Log files under ${logDir} older than ${logsOlderThanDays} days deleted (${before.oldLogs} found).`
      : `Old log files not deleted (${outcome('delete-old-logs')}).`,
  );
  solution.push(
    outcome('expand-pvc') === 'applied'
      ? `PVC ${namespace}/${pvc} expanded ${currentSize} -> ${targetSize}.`
      : expansionRefused
        ? `PVC not expanded: ${expansionRefused}.`
        : `PVC not expanded (${outcome('expand-pvc')}).`,
  );
  solution.push(
    outcome('delete-old-backups') === 'applied'
      ? `${before.oldBackups} backups under ${backupPrefix} older than ${backupsOlderThanDays} days deleted; newer ones and latest.sql kept.`
      : `Old backups not deleted (${outcome('delete-old-backups')}).`,
  );
  return solution.join(' ');
}

/** The incident report and the result. */
async function reportDisk(v: Volume, claim: PvcSummary, before: DiskPressureState, expansion: Expansion, after: DiskPressureState | undefined): Promise<DiskPressureResult> {
  const { run, input } = v;
  const { namespace, pvc, dataDir, logDir, logsOlderThanDays, backupsOlderThanDays, backupPrefix } = input;
  const { currentSize, targetSize, expansionRefused } = expansion;
  const { df, largest } = before.disk;
  const result = await run.finish(
    `volume ${df}; ${before.oldLogs} log files older than ${logsOlderThanDays} days, ${before.oldBackups} backups older than ${backupsOlderThanDays} days; PVC ${currentSize ?? 'unknown'} on ${claim.storageClass ?? '(none)'}${after ? `; after: PVC ${after.pvc.requested}, ${after.oldLogs} old logs, ${after.oldBackups} old backups` : ''}`,
    {
      impact: `The database volume (${namespace}/${pvc}, ${currentSize ?? 'unknown size'}) reports ${df}${before.disk.usePercent !== undefined ? ` (${before.disk.usePercent}% used)` : ''}; when it fills, PostgreSQL stops accepting writes and can shut down.`,
      rootCause: `Largest directories under ${dataDir}: ${largestText(largest) || 'none'}. ${before.oldLogs} *.log files under ${logDir} are older than ${logsOlderThanDays} days; ${before.oldBackups} backups under ${backupPrefix} are older than ${backupsOlderThanDays} days.${expansionRefused ? ` ${expansionRefused}.` : ''}`,
      solution: solutionText(input, before, expansion, (stepId) => run.outcomeOf(stepId)),
      prevention: `Rotate logs (logrotate or the app's own rotation, keep ${logsOlderThanDays} days), apply an S3 lifecycle rule expiring ${backupPrefix} after ${backupsOlderThanDays} days, use a StorageClass that allows expansion for the database, and alert at 80% disk usage.`,
    },
  );
  return { ...result, before, ...(after ? { after } : {}), ...(claim.allowsExpansion && targetSize ? { targetSize } : {}), ...(expansionRefused ? { expansionRefused } : {}) };
}
