import { DeleteObjectsCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { throwIfCancelled } from './cancellation';
import { callsTo, failure, invalidInput, refused } from './errors';
import { assertBackupDeletionPrefix, assertS3PrefixAllowed } from './guards';
import { validateInt } from './input-checks';
import { listAllObjects, validateKeyText } from './s3-objects';

const inS3 = callsTo('S3');

/** The floor no deletion goes below (configuration `s3.backupKeepNewest`, `s3.backupMinAgeDays`). */
export interface BackupFloor {
  /** The newest N dated backups under the prefix are kept whatever their age. */
  keepNewest: number;
  /** Nothing younger than this is deleted, whatever the input asks. */
  minAgeDays: number;
}

export const defaultBackupFloor: BackupFloor = { keepNewest: 7, minAgeDays: 7 };

export interface DeleteOldBackupsInput {
  /** Must be under the configured backup prefix (never the evidence prefix), allowlisted, and end in "/". */
  prefix: string;
  /** At least the floor's minAgeDays. */
  olderThanDays: number;
  /** Deletes at most this many (the oldest first). */
  maxObjects: number;
  dryRun?: boolean;
  /** ISO time the age is measured from (the workflow's deterministic time); default the worker's clock. */
  now?: string;
}

export interface DeleteOldBackupsResult {
  prefix: string;
  olderThanDays: number;
  now: string;
  /** Objects whose backup time is before this are old. */
  cutoff: string;
  dryRun: boolean;
  /** Objects listed under the prefix. */
  scanned: number;
  /** Old objects that may go (before the cap): `latest.sql` and the newest kept by the floor excluded. */
  old: number;
  /** Removed by this activity, over every attempt (a retry counts what a killed attempt removed). */
  deleted?: number;
  wouldDelete?: number;
  /** The deleted (or would-be-deleted) keys, oldest first; at most 1000 listed. */
  keys: string[];
  keysOmitted: number;
  /** More old objects than maxObjects. */
  capped: boolean;
  /** DeleteObjects requests sent (or that would be sent). */
  batches: number;
  /** `latest.sql` objects that were old but are never deleted. */
  protected: string[];
  /** Old backups kept because they are among the newest `keepNewest` (absent in results from before the floor). */
  keptByFloor?: string[];
  keepNewest?: number;
  /** Set when this attempt continued a killed attempt's deletion: what that attempt had already removed. */
  resumed?: { alreadyDeleted: number };
}

/** The deletion a run decided on, written before the first object goes, so a retry finishes that set and counts it exactly. */
interface DeletionManifest {
  prefix: string;
  olderThanDays: number;
  now: string;
  summary: Omit<DeleteOldBackupsResult, 'deleted' | 'wouldDelete' | 'resumed'>;
  keys: string[];
}

export interface BackupRetentionDeps {
  client: S3Client;
  bucket: string;
  backupPrefix: string;
  evidencePrefix: string;
  allowedPrefixes: string[];
  floor: BackupFloor;
}

const deleteBatchSize = 1000;
const listedKeysLimit = 1000;
const dayMs = 86_400_000;
const protectedNames = new Set(['latest.sql']);

/**
 * The date a dump's name says it was taken: the last YYYY-MM-DD in the key's file name
 * (e.g. `short_drama_prod_2026-10-01.sql`), at 00:00 UTC; undefined when there is none or it is
 * not a calendar date.
 */
export function dateInKeyName(key: string): Date | undefined {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const matches = [...name.matchAll(/(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)/g)];
  const last = matches[matches.length - 1];
  if (!last) return undefined;
  const [year, month, day] = [Number(last[1]), Number(last[2]), Number(last[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined;
  return date;
}

/**
 * The time a backup counts as taken, for retention: the OLDER of its LastModified and the date
 * in its file name. A dump copied or restored into the bucket later (fresh LastModified) still
 * ages by the date it was named with; a name without a date (or with a date in the future) ages
 * by LastModified alone.
 */
export function backupTime(key: string, lastModified: Date): Date {
  const named = dateInKeyName(key);
  return named && named.getTime() < lastModified.getTime() ? named : lastModified;
}

function isProtected(key: string): boolean {
  return protectedNames.has(key.slice(key.lastIndexOf('/') + 1));
}

const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Which backups may go: older than the cutoff, not `latest.sql`, and not among the newest
 * `keepNewest` (newest by backup time, then by key), oldest first.
 */
export function chooseOldBackups(objects: Array<{ key: string; lastModified: Date }>, cutoffMs: number, keepNewest: number) {
  const dated = objects.filter((o) => !o.key.endsWith('/') && !isProtected(o.key)).map((o) => ({ key: o.key, time: backupTime(o.key, o.lastModified).getTime() }));
  dated.sort((a, b) => b.time - a.time || byKey(b.key, a.key));
  const kept = dated.slice(0, keepNewest);
  return {
    deletable: dated
      .slice(keepNewest)
      .filter((o) => o.time < cutoffMs)
      .reverse()
      .map((o) => o.key),
    keptByFloor: kept.filter((o) => o.time < cutoffMs).map((o) => o.key),
    protectedKeys: objects.filter((o) => isProtected(o.key) && backupTime(o.key, o.lastModified).getTime() < cutoffMs).map((o) => o.key),
  };
}

export function assertBackupAgeAboveFloor(olderThanDays: number, floor: BackupFloor): void {
  if (olderThanDays < floor.minAgeDays)
    throw refused(`backups younger than ${floor.minAgeDays} days are never deleted (configuration s3.backupMinAgeDays); asked for older than ${olderThanDays} days`);
}

/** Where a run's deletion manifest lives: under the evidence prefix, one per activity execution. */
function manifestKey(evidencePrefix: string): string {
  const { workflowExecution, activityId } = Context.current().info;
  const safe = (text = 'none') => text.replace(/[^A-Za-z0-9._-]/g, '_');
  return `${evidencePrefix}deletions/${safe(workflowExecution?.workflowId)}-${safe(workflowExecution?.runId)}-${safe(activityId)}.json`;
}

/** The S3 requests of one deletion. */
function backupStore({ client, bucket: Bucket }: Pick<BackupRetentionDeps, 'client' | 'bucket'>) {
  return {
    listAll: (prefix: string) => listAllObjects(client, Bucket, prefix),
    /** The manifest a killed earlier attempt of this activity wrote for the same request, if any. */
    async earlierManifest(key: string, request: Pick<DeletionManifest, 'prefix' | 'olderThanDays' | 'now'>): Promise<DeletionManifest | undefined> {
      if (Context.current().info.attempt <= 1) return undefined;
      const body = await inS3(`read s3://${Bucket}/${key}`, async () => {
        try {
          return await (await client.send(new GetObjectCommand({ Bucket, Key: key }))).Body?.transformToString();
        } catch (err) {
          if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
          throw err;
        }
      });
      if (body === undefined) return undefined;
      const manifest = JSON.parse(body) as DeletionManifest;
      return manifest.prefix === request.prefix && manifest.olderThanDays === request.olderThanDays && manifest.now === request.now ? manifest : undefined;
    },

    async deleteKeys(prefix: string, keys: string[]): Promise<number> {
      let deleted = 0;
      for (let at = 0; at < keys.length; at += deleteBatchSize) {
        const batch = keys.slice(at, at + deleteBatchSize);
        const action = `delete ${batch.length} old backups under s3://${Bucket}/${prefix}`;
        const response = await inS3(action, () => client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })));
        const errors = response.Errors ?? [];
        if (errors.length > 0) {
          const first = errors[0]!;
          const type = first.Code === 'AccessDenied' ? 'Forbidden' : 'Transient';
          throw failure(type, `${action}: ${errors.length} not deleted, e.g. ${first.Key}: ${first.Code ?? ''} ${first.Message ?? ''}`.trim());
        }
        deleted += batch.length;
        const ctx = Context.current();
        ctx.heartbeat({ deleted });
        if (at + deleteBatchSize < keys.length) throwIfCancelled(ctx);
      }
      return deleted;
    },

    async writeManifest(key: string, manifest: DeletionManifest): Promise<void> {
      await inS3(`write s3://${Bucket}/${key}`, () => client.send(new PutObjectCommand({ Bucket, Key: key, Body: JSON.stringify(manifest), ContentType: 'application/json' })));
    },
  };
}

/**
 * Deletes backups older than N days under the backup prefix, oldest first, at most maxObjects,
 * in DeleteObjects batches of up to 1000, above the floor: `latest.sql` and the newest
 * `keepNewest` dated backups always stay, and nothing younger than `minAgeDays` goes. Age: see
 * backupTime. The chosen keys are written to a manifest under the evidence prefix before the
 * first delete: a retry after a crash finishes exactly that set and counts what the killed
 * attempt removed. dryRun lists only.
 */
export async function deleteOldBackups(deps: BackupRetentionDeps, input: DeleteOldBackupsInput): Promise<DeleteOldBackupsResult> {
  const { floor } = deps;
  const store = backupStore(deps);
  const prefix = validateKeyText(input?.prefix, 'prefix');
  if (!prefix.endsWith('/')) throw invalidInput(`prefix "${prefix}": expected a folder ending in "/"`);
  assertBackupDeletionPrefix(prefix, { ...deps, s3Prefixes: deps.allowedPrefixes });
  const olderThanDays = validateInt(input.olderThanDays, 'olderThanDays', 1, 36_500);
  assertBackupAgeAboveFloor(olderThanDays, floor);
  const maxObjects = validateInt(input.maxObjects, 'maxObjects', 1, 100_000);
  let nowMs = Date.now();
  if (input.now !== undefined) {
    nowMs = typeof input.now === 'string' ? Date.parse(input.now) : NaN;
    if (!Number.isFinite(nowMs)) throw invalidInput(`now "${String(input.now)}": expected an ISO 8601 time`);
  }
  const request = { prefix, olderThanDays, now: new Date(nowMs).toISOString() };
  const dryRun = input.dryRun === true;
  const manifestAt = dryRun ? undefined : manifestKey(deps.evidencePrefix);
  const earlier = manifestAt ? await store.earlierManifest(manifestAt, request) : undefined;

  const all = await store.listAll(prefix);
  if (earlier) {
    // What the killed attempt removed is what is gone from its set now; the rest goes now.
    const present = new Set(all.map((o) => o.key));
    const remaining = earlier.keys.filter((key) => present.has(key));
    const alreadyDeleted = earlier.keys.length - remaining.length;
    const deleted = alreadyDeleted + (await store.deleteKeys(prefix, remaining));
    return { ...earlier.summary, deleted, resumed: { alreadyDeleted } };
  }

  const cutoffMs = nowMs - olderThanDays * dayMs;
  const { deletable, keptByFloor, protectedKeys } = chooseOldBackups(all, cutoffMs, floor.keepNewest);
  const chosen = deletable.slice(0, maxObjects);
  const summary = {
    ...request,
    cutoff: new Date(cutoffMs).toISOString(),
    dryRun,
    scanned: all.length,
    old: deletable.length,
    keys: chosen.slice(0, listedKeysLimit),
    keysOmitted: Math.max(0, chosen.length - listedKeysLimit),
    capped: deletable.length > maxObjects,
    batches: Math.ceil(chosen.length / deleteBatchSize),
    protected: protectedKeys.slice(0, listedKeysLimit),
    keptByFloor: keptByFloor.slice(0, listedKeysLimit),
    keepNewest: floor.keepNewest,
  };
  if (dryRun || !manifestAt) return { ...summary, wouldDelete: chosen.length };

  if (chosen.length > 0) {
    const manifest: DeletionManifest = { ...request, summary, keys: chosen };
    assertS3PrefixAllowed(manifestAt, { s3Prefixes: deps.allowedPrefixes });
    await store.writeManifest(manifestAt, manifest);
  }
  return { ...summary, deleted: await store.deleteKeys(prefix, chosen) };
}
