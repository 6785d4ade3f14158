import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName, relativeDir, s3Folder, storageQuantity } from './fields';

/** 场景4 磁盘空间不足: the manual's names are the defaults. */
export const diskPressureInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    /** The database Deployment whose pod mounts the volume (exec runs there). */
    deployment: kubeName.default('postgres'),
    container: kubeName.optional(),
    pvc: kubeName.default('postgres-pvc'),
    /** The volume's mount, relative to the container's work dir: df and du run on it. */
    dataDir: relativeDir.default('var/lib/postgresql'),
    /** Log files (*.log) older than logsOlderThanDays under it are deleted. */
    logDir: relativeDir.default('var/log/app'),
    logsOlderThanDays: z.number().int({ message: 'a whole number of days' }).min(1, { message: 'at least 1 day' }).max(3650).default(7),
    /** At most this many log files are deleted in one run. */
    maxFilesDeleted: z.number().int().min(1, { message: 'at least 1 file' }).max(100_000).default(10_000),
    backupsOlderThanDays: z.number().int({ message: 'a whole number of days' }).min(1, { message: 'at least 1 day' }).max(36_500).default(30),
    backupPrefix: s3Folder.default('database/'),
    /** At most this many backups are deleted in one run. */
    maxBackupsDeleted: z.number().int().min(1).max(100_000).default(1000),
    /** The PVC's new size; default 1.5x its current request. */
    expandTo: storageQuantity.optional(),
  })
  .strict();

export type DiskPressureInput = z.input<typeof diskPressureInput>;
