import { createHash } from 'node:crypto';
import { DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { throwIfCancelled } from './cancellation';
import type { PreflightRow } from '../common/preflight';
import { classified, failure, invalidInput, refused } from './errors';
import { assertS3PrefixAllowed } from './guards';
import { notConfigured, runChecks } from './preflight-checks';
import { validateInt } from './input-checks';

export interface S3Deps {
  /** Absent when no S3 is configured. */
  s3?: S3Client;
  bucket?: string;
  backupPrefix: string;
  evidencePrefix: string;
  allowedPrefixes: string[];
}

export function isAllowedKey(key: string, allowedPrefixes: string[]): boolean {
  return allowedPrefixes.some((prefix) => key.startsWith(prefix));
}

export interface S3ObjectSummary {
  key: string;
  size: number;
  /** ISO 8601. */
  lastModified: string;
}

export interface ListNewestObjectsInput {
  /** Defaults to the backup prefix (`database/`). */
  prefix?: string;
  /** How many of the newest to return; default 5. */
  limit?: number;
}

export interface ListNewestObjectsResult {
  prefix: string;
  /** Every object under the prefix. */
  total: number;
  /** Newest first (LastModified, then key). */
  objects: S3ObjectSummary[];
}

export type DumpFormat = 'custom' | 'plain' | 'unknown';

export interface VerifyDumpResult {
  key: string;
  exists: boolean;
  size: number;
  lastModified?: string;
  format?: DumpFormat;
  /** Custom format only: archive version from the header, e.g. "1.15.0". */
  archiveVersion?: string;
  valid: boolean;
  /** Why it is not valid. */
  problem?: string;
}

/** A Buffer after JSON (Temporal's default payload converter turns a Buffer inside an object into this). */
export interface JsonBuffer {
  type: 'Buffer';
  data: number[];
}

export interface PutEvidenceInput {
  /** Full key; must be under the evidence prefix (`runbooks/`). Decide it in the workflow (e.g. workflow id + step). */
  key: string;
  body: string | Uint8Array | JsonBuffer;
  /** Default text/plain for strings, application/octet-stream otherwise. */
  contentType?: string;
  /** Replace an existing object with different content (default: refuse). */
  overwrite?: boolean;
  dryRun?: boolean;
}

export interface PutEvidenceResult {
  key: string;
  size: number;
  sha256: string;
  /** False when the same content was already there (a retry) or on a dry run. */
  written: boolean;
  multipart: boolean;
  dryRun: boolean;
}

export interface DeleteOldBackupsInput {
  /** Must be under an allowlisted prefix and end in "/". */
  prefix: string;
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
  /** Old objects found (before the cap), `latest.sql` excluded. */
  old: number;
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
}

const evidenceMultipartThreshold = 8 * 1024 * 1024;
const headerBytes = 1024;
const deleteBatchSize = 1000;
const listedKeysLimit = 1000;
const dayMs = 86_400_000;
const protectedNames = new Set(['latest.sql']);

function requireS3(s3: S3Client | undefined, bucket: string | undefined): { s3: S3Client; bucket: string } {
  if (!s3 || !bucket) throw failure('InvalidInput', 'S3 is not configured (S3_BUCKET)');
  return { s3, bucket };
}

function validateKeyText(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalidInput(`${what}: expected a non-empty string`);
  if (value.length > 1024) throw invalidInput(`${what}: longer than 1024 characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalidInput(`${what}: contains control characters`);
  if (value.startsWith('/') || value.split('/').some((part) => part === '..' || part === '.')) {
    throw invalidInput(`${what} "${value}": no leading "/" and no "." or ".." segments`);
  }
  return value;
}

function bodyBytes(body: unknown): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const json = body as Partial<JsonBuffer> | null;
  if (json && json.type === 'Buffer' && Array.isArray(json.data)) return Buffer.from(json.data);
  throw invalidInput('evidence body: expected a string or bytes');
}

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

export function createS3Activities({ s3, bucket, backupPrefix, evidencePrefix, allowedPrefixes }: S3Deps) {
  /** Every object under the prefix (ListObjectsV2 followed to the end). */
  async function listAll(client: S3Client, Bucket: string, prefix: string): Promise<Array<{ key: string; size: number; lastModified: Date }>> {
    const objects: Array<{ key: string; size: number; lastModified: Date }> = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await classified(`list s3://${Bucket}/${prefix}`, () => client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken, MaxKeys: 1000 })));
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || o.LastModified === undefined) continue;
        objects.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified });
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !ContinuationToken) throw failure('Transient', `list s3://${Bucket}/${prefix}: truncated listing without a continuation token`);
      // A listing of many pages keeps a long-running activity alive and cancellable.
      if (ContinuationToken) {
        const ctx = Context.current();
        ctx.heartbeat({ listed: objects.length });
        throwIfCancelled(ctx);
      }
    } while (ContinuationToken);
    return objects;
  }

  return {
    /** probeName comes from the workflow, so a retried attempt writes and deletes the same object. */
    async preflightS3(probeName: string): Promise<PreflightRow[]> {
      if (!s3 || !bucket) return notConfigured('s3');
      const probeKey = `${evidencePrefix}preflight/${probeName.replace(/[^A-Za-z0-9._-]/g, '_')}.probe`;
      const probeBody = `preflight probe ${probeName}`;
      return runChecks('s3', [
        [
          'bucket reachable',
          async () => {
            await s3.send(new HeadBucketCommand({ Bucket: bucket }));
            return { ok: true, detail: `bucket ${bucket}` };
          },
        ],
        [
          'list backups',
          async () => {
            const listing = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: backupPrefix, MaxKeys: 1000 }));
            const count = listing.KeyCount ?? 0;
            return { ok: true, detail: `${count}${listing.IsTruncated ? '+' : ''} objects under ${backupPrefix}` };
          },
        ],
        [
          'put, read back, delete a probe',
          async () => {
            if (!isAllowedKey(probeKey, allowedPrefixes)) {
              return { ok: false, detail: `evidence prefix ${evidencePrefix} is not in the S3 prefix allowlist` };
            }
            await s3.send(new PutObjectCommand({ Bucket: bucket, Key: probeKey, Body: probeBody, ContentType: 'text/plain' }));
            const read = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: probeKey }));
            const text = await read.Body?.transformToString();
            await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: probeKey }));
            const same = text === probeBody;
            return { ok: same, detail: same ? `wrote, read and deleted ${probeKey}` : `read back different content from ${probeKey}` };
          },
        ],
      ]);
    },

    /** The newest objects under a prefix (whole listing, sorted by LastModified). Read-only. */
    async listNewestObjects(input: ListNewestObjectsInput = {}): Promise<ListNewestObjectsResult> {
      const { s3: client, bucket: Bucket } = requireS3(s3, bucket);
      const prefix = input.prefix === undefined ? backupPrefix : validateKeyText(input.prefix, 'prefix');
      const limit = validateInt(input.limit, 'limit', 1, 1000, 5);
      const all = await listAll(client, Bucket, prefix);
      all.sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime() || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
      return {
        prefix,
        total: all.length,
        objects: all.slice(0, limit).map((o) => ({ key: o.key, size: o.size, lastModified: o.lastModified.toISOString() })),
      };
    },

    /**
     * Checks a pg_dump object without downloading it: HEAD for existence and size, then only its
     * first KB: custom format starts with "PGDMP", plain format has "-- PostgreSQL database dump".
     * A missing, empty or unrecognised object is a result (valid: false), not an error. Read-only.
     */
    async verifyDumpObject(input: { key: string }): Promise<VerifyDumpResult> {
      const { s3: client, bucket: Bucket } = requireS3(s3, bucket);
      const key = validateKeyText(input?.key, 'key');
      let head;
      try {
        head = await classified(`head s3://${Bucket}/${key}`, () => client.send(new HeadObjectCommand({ Bucket, Key: key })));
      } catch (err) {
        if (err instanceof ApplicationFailure && err.type === 'NotFound') return { key, exists: false, size: 0, valid: false, problem: 'object not found' };
        throw err;
      }
      const size = head.ContentLength ?? 0;
      const lastModified = head.LastModified?.toISOString();
      if (size === 0) return { key, exists: true, size, lastModified, valid: false, problem: 'object is empty' };
      const end = Math.min(size, headerBytes) - 1;
      const read = await classified(`read the first ${end + 1} bytes of s3://${Bucket}/${key}`, async () => {
        const response = await client.send(new GetObjectCommand({ Bucket, Key: key, Range: `bytes=0-${end}` }));
        return Buffer.from(await response.Body!.transformToByteArray());
      });
      // A server that ignores Range sends everything; look at the first KB only either way.
      const header = read.subarray(0, headerBytes);
      if (header.subarray(0, 5).toString('latin1') === 'PGDMP') {
        const archiveVersion = header.length >= 8 ? `${header[5]}.${header[6]}.${header[7]}` : undefined;
        return { key, exists: true, size, lastModified, format: 'custom', ...(archiveVersion ? { archiveVersion } : {}), valid: true };
      }
      if (header.toString('utf8').includes('-- PostgreSQL database dump')) return { key, exists: true, size, lastModified, format: 'plain', valid: true };
      return { key, exists: true, size, lastModified, format: 'unknown', valid: false, problem: 'no pg_dump header (neither PGDMP nor "-- PostgreSQL database dump" in the first KB)' };
    },

    /**
     * Writes evidence under the evidence prefix with its sha256 in the object metadata; bodies over
     * 8 MiB go up as a multipart upload. The same content already there is not written again (a
     * retry); different content there is refused unless overwrite is set.
     */
    async putEvidence(input: PutEvidenceInput): Promise<PutEvidenceResult> {
      const { s3: client, bucket: Bucket } = requireS3(s3, bucket);
      const key = validateKeyText(input?.key, 'key');
      if (!key.startsWith(evidencePrefix) || key.length === evidencePrefix.length) {
        throw refused(`evidence key "${key}" is not under the evidence prefix ${evidencePrefix}`);
      }
      assertS3PrefixAllowed(key, { s3Prefixes: allowedPrefixes });
      const body = bodyBytes(input.body);
      if (input.contentType !== undefined && (typeof input.contentType !== 'string' || !/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/.test(input.contentType))) {
        throw invalidInput(`contentType "${String(input.contentType)}": expected a media type such as text/markdown`);
      }
      const contentType = input.contentType ?? (typeof input.body === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream');
      const sha256 = createHash('sha256').update(body).digest('hex');
      const multipart = body.length > evidenceMultipartThreshold;
      const dryRun = input.dryRun === true;
      const result = { key, size: body.length, sha256, multipart, dryRun };

      let existing: { sha256?: string; size: number } | undefined;
      try {
        const head = await classified(`head s3://${Bucket}/${key}`, () => client.send(new HeadObjectCommand({ Bucket, Key: key })));
        existing = { sha256: head.Metadata?.sha256, size: head.ContentLength ?? 0 };
      } catch (err) {
        if (!(err instanceof ApplicationFailure && err.type === 'NotFound')) throw err;
      }
      if (existing && existing.sha256 === sha256 && existing.size === body.length) return { ...result, written: false };
      if (existing && input.overwrite !== true) {
        throw refused(`evidence ${key} already exists with different content (sha256 ${existing.sha256 ?? 'unknown'}); pass overwrite to replace it`);
      }
      if (dryRun) return { ...result, written: false };

      const params = { Bucket, Key: key, Body: body, ContentType: contentType, Metadata: { sha256 } };
      await classified(`put s3://${Bucket}/${key}`, async () => {
        if (!multipart) {
          await client.send(new PutObjectCommand(params));
          return;
        }
        const upload = new Upload({ client, params, partSize: evidenceMultipartThreshold, queueSize: 2, leavePartsOnError: false });
        await upload.done();
      });
      return { ...result, written: true };
    },

    /**
     * Deletes backups older than N days under an allowlisted prefix, oldest first, at most
     * maxObjects, in DeleteObjects batches of up to 1000. Age: see backupTime (older of LastModified
     * and the date in the file name). `latest.sql` is never deleted. dryRun lists only.
     */
    async deleteOldBackups(input: DeleteOldBackupsInput): Promise<DeleteOldBackupsResult> {
      const { s3: client, bucket: Bucket } = requireS3(s3, bucket);
      const prefix = validateKeyText(input?.prefix, 'prefix');
      if (!prefix.endsWith('/')) throw invalidInput(`prefix "${prefix}": expected a folder ending in "/"`);
      assertS3PrefixAllowed(prefix, { s3Prefixes: allowedPrefixes });
      const olderThanDays = validateInt(input.olderThanDays, 'olderThanDays', 1, 36_500);
      const maxObjects = validateInt(input.maxObjects, 'maxObjects', 1, 100_000);
      let nowMs = Date.now();
      if (input.now !== undefined) {
        nowMs = typeof input.now === 'string' ? Date.parse(input.now) : NaN;
        if (!Number.isFinite(nowMs)) throw invalidInput(`now "${String(input.now)}": expected an ISO 8601 time`);
      }
      const cutoffMs = nowMs - olderThanDays * dayMs;
      const dryRun = input.dryRun === true;

      const all = await listAll(client, Bucket, prefix);
      const protectedKeys: string[] = [];
      const old: Array<{ key: string; time: number }> = [];
      for (const o of all) {
        if (o.key.endsWith('/')) continue; // folder marker
        const time = backupTime(o.key, o.lastModified).getTime();
        if (time >= cutoffMs) continue;
        if (isProtected(o.key)) protectedKeys.push(o.key);
        else old.push({ key: o.key, time });
      }
      old.sort((a, b) => a.time - b.time || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const chosen = old.slice(0, maxObjects).map((o) => o.key);
      const batches = Math.ceil(chosen.length / deleteBatchSize);
      const summary = {
        prefix,
        olderThanDays,
        now: new Date(nowMs).toISOString(),
        cutoff: new Date(cutoffMs).toISOString(),
        dryRun,
        scanned: all.length,
        old: old.length,
        keys: chosen.slice(0, listedKeysLimit),
        keysOmitted: Math.max(0, chosen.length - listedKeysLimit),
        capped: old.length > maxObjects,
        batches,
        protected: protectedKeys.slice(0, listedKeysLimit),
      };
      if (dryRun) return { ...summary, wouldDelete: chosen.length };

      let deleted = 0;
      for (let at = 0; at < chosen.length; at += deleteBatchSize) {
        const batch = chosen.slice(at, at + deleteBatchSize);
        const action = `delete ${batch.length} old backups under s3://${Bucket}/${prefix}`;
        const response = await classified(action, () => client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })));
        const errors = response.Errors ?? [];
        if (errors.length > 0) {
          const first = errors[0]!;
          const type = first.Code === 'AccessDenied' ? 'Forbidden' : 'Transient';
          throw failure(type, `${action}: ${errors.length} not deleted, e.g. ${first.Key}: ${first.Code ?? ''} ${first.Message ?? ''}`.trim());
        }
        deleted += batch.length;
        // Each batch is done for good: a retry recomputes the old objects and finds only the rest.
        const ctx = Context.current();
        ctx.heartbeat({ deleted });
        if (at + deleteBatchSize < chosen.length) throwIfCancelled(ctx);
      }
      return { ...summary, deleted };
    },
  };
}
