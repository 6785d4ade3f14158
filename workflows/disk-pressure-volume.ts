import type { DiskPressureStep } from './disk-pressure';
/** diskPressure's reading of the volume: the PVC, df and du in the database pod, the old log files there, the old backups; the state built from them. */
import type { z } from 'zod';
import type { ExecResult } from '../activities/kubernetes-exec';
import type { PvcSummary } from '../activities/kubernetes-storage';
import type { DeleteOldBackupsResult } from '../activities/s3';
import type { diskPressureInput } from '../common/inputs/disk-pressure';
import type { RunbookRun } from './kernel/runbook-run';
import { checkedOutput, dfLine, dfUsePercent } from './exec-output';
import { read, wait } from './activity-proxies';
import { failure } from '../common/failures';

export interface DiskUsage {
  /** The df -h line of the volume. */
  df: string;
  /** Use% of df, e.g. 85. */
  usePercent?: number;
  /** Largest directories (du -k, depth 1), largest first. */
  largest: Array<{ path: string; kib: number }>;
}

export interface DiskPressureState {
  pvc: { capacity?: string; requested?: string; storageClass?: string; allowsExpansion: boolean };
  disk: DiskUsage;
  /** Log files older than logsOlderThanDays. */
  oldLogs: number;
  /** Backups older than backupsOlderThanDays (latest.sql excluded). */
  oldBackups: number;
}

const kib = (n: number) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)}G` : n >= 1024 ? `${(n / 1024).toFixed(1)}M` : `${n}K`);

/** The five largest directories, as the evidence and the report name them. */
export const largestText = (largest: DiskUsage['largest']) =>
  largest
    .slice(0, 5)
    .map((d) => `${d.path} ${kib(d.kib)}`)
    .join(', ');

/** The state the runbook reads before and after its changes: the PVC, df and du of the volume, old logs and old backups. */
export function diskState(claim: PvcSummary, df: string, largest: DiskUsage['largest'], oldLogs: number, oldBackups: number): DiskPressureState {
  const usePercent = dfUsePercent(df);
  return {
    pvc: {
      ...(claim.capacity ? { capacity: claim.capacity } : {}),
      ...(claim.requested ? { requested: claim.requested } : {}),
      ...(claim.storageClass ? { storageClass: claim.storageClass } : {}),
      allowsExpansion: claim.allowsExpansion,
    },
    disk: { df, ...(usePercent !== undefined ? { usePercent } : {}), largest },
    oldLogs,
    oldBackups,
  };
}

type Input = z.infer<typeof diskPressureInput>;

/** What one run's steps share: the run, the workflow's time, and reading the volume (PVC, df, du, old logs, old backups). */
export interface Volume {
  run: RunbookRun<DiskPressureStep>;
  input: Input;
  /** The run's own time, read once (see diskPressure). */
  now: string;
  exec: (command: string[], timeoutSeconds?: number) => Promise<ExecResult>;
  readPvc: () => Promise<PvcSummary>;
  readDf: () => Promise<string>;
  readDu: () => Promise<DiskUsage['largest']>;
  /** The old log files (at most 200 listed) and how many there are. */
  readOldLogs: () => Promise<{ files: string[]; count: number; listTruncated: boolean }>;
  dryBackups: () => Promise<DeleteOldBackupsResult>;
}

/** Reading the volume: the PVC, df and du in the database pod, the old log files there, a dry run of deleting the old backups. */
export function volumeOf(run: RunbookRun<DiskPressureStep>, input: Input, now: string): Volume {
  const { namespace, deployment, container, pvc, dataDir, logDir, logsOlderThanDays, backupsOlderThanDays, backupPrefix } = input;
  const exec = (command: string[], timeoutSeconds = 120) => wait.execInPod({ namespace, deployment, ...(container ? { container } : {}), command, timeoutSeconds, maxOutputBytes: 1_048_576 });
  const findOld = ['find', logDir, '-type', 'f', '-name', '*.log', '-mtime', `+${logsOlderThanDays}`];
  const readPvc = async (): Promise<PvcSummary> => {
    const { claims } = await read.listPersistentVolumeClaims({ namespace });
    const claim = claims.find((c) => c.name === pvc);
    if (!claim) throw failure('NotFound', `persistentvolumeclaims/${pvc} not found in namespace ${namespace}`);
    return claim;
  };
  const readDf = async (): Promise<string> => dfLine(dataDir, await exec(['df', '-h', dataDir]));
  const readDu = async (): Promise<DiskUsage['largest']> => {
    const out = checkedOutput(`du -k -d 1 ${dataDir}`, await exec(['du', '-k', '-d', '1', dataDir]));
    return out
      .split('\n')
      .map((line) => /^(\d+)\s+(.+)$/.exec(line.trim()))
      .flatMap((m) => (m ? [{ path: m[2]!, kib: Number(m[1]) }] : []))
      .sort((a, b) => b.kib - a.kib || (a.path < b.path ? -1 : 1))
      .slice(0, 10);
  };
  const readOldLogs = async () => {
    const r = await exec(findOld);
    const files = checkedOutput(`find ${logDir}`, r)
      .split('\n')
      .filter((l) => l !== '');
    return { files: files.slice(0, 200), count: files.length, listTruncated: r.truncated || files.length > 200 };
  };
  const dryBackups = () => read.deleteOldBackups({ prefix: backupPrefix, olderThanDays: backupsOlderThanDays, maxObjects: input.maxBackupsDeleted, dryRun: true, now });
  return { run, input, now, exec, readPvc, readDf, readDu, readOldLogs, dryBackups };
}

export const countOf = (x: { count: number }) => x.count;
