import { createHash, randomUUID } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ApplicationFailure } from '@temporalio/common';
import type { PreflightRow } from '../common/preflight';
import { callsTo, invalidInput, refused } from './errors';
import { defaultBackupFloor, deleteOldBackups, type BackupFloor, type DeleteOldBackupsInput, type DeleteOldBackupsResult } from './backup-retention';
import { listAllObjects, requireS3, validateKeyText } from './s3-objects';
import { assertS3PrefixAllowed } from './guards';
import { excessOutcome, notConfigured, runChecks } from './preflight-checks';
import { validateInt } from './input-checks';

const inS3 = callsTo('S3');

export { backupTime, dateInKeyName, type DeleteOldBackupsInput, type DeleteOldBackupsResult } from './backup-retention';

export interface S3Deps {
  /** Absent when no S3 is configured. */
  s3?: S3Client;
  bucket?: string;
  backupPrefix: string;
  evidencePrefix: string;
  allowedPrefixes: string[];
  backupFloor?: BackupFloor;
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

const evidenceMultipartThreshold = 8 * 1024 * 1024;
const headerBytes = 1024;
/** Whether S3 refused the call as not permitted (AccessDenied, 403); other errors are thrown. */
async function deniedByS3(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return false;
  } catch (err) {
    const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'AccessDenied' || e.Code === 'AccessDenied' || e.$metadata?.httpStatusCode === 403) return true;
    throw err;
  }
}

function bodyBytes(body: unknown): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const json = body as Partial<JsonBuffer> | null;
  if (json && json.type === 'Buffer' && Array.isArray(json.data)) return Buffer.from(json.data);
  throw invalidInput('evidence body: expected a string or bytes');
}

export function createS3Activities({ s3, bucket, backupPrefix, evidencePrefix, allowedPrefixes, backupFloor = defaultBackupFloor }: S3Deps) {
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
            // A listing, not HeadBucket: some servers ask HeadBucket for read rights on the whole bucket, more than the worker has.
            await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
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
        [
          'no excess privileges',
          async () => {
            // Deleting a key that cannot exist changes nothing; whether S3 refuses it tells whether the identity may write there.
            const outside = `runbook-preflight-probe/${probeName.replace(/[^A-Za-z0-9._-]/g, '_')}-${randomUUID()}.absent`;
            const excess =
              isAllowedKey(outside, allowedPrefixes) || (await deniedByS3(() => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: outside }))))
                ? []
                : [`a DELETE outside ${allowedPrefixes.join(', ')} is allowed (bucket-wide write)`];
            return excessOutcome(excess, `beyond the allowlisted prefixes ${allowedPrefixes.join(', ')} (a DELETE of an absent key outside them is refused)`);
          },
        ],
      ]);
    },

    /** The newest objects under a prefix (whole listing, sorted by LastModified). Read-only. */
    async listNewestObjects(input: ListNewestObjectsInput = {}): Promise<ListNewestObjectsResult> {
      const { s3: client, bucket: Bucket } = requireS3(s3, bucket);
      const prefix = input.prefix === undefined ? backupPrefix : validateKeyText(input.prefix, 'prefix');
      const limit = validateInt(input.limit, 'limit', 1, 1000, 5);
      const all = await listAllObjects(client, Bucket, prefix);
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
        head = await inS3(`head s3://${Bucket}/${key}`, () => client.send(new HeadObjectCommand({ Bucket, Key: key })));
      } catch (err) {
        if (err instanceof ApplicationFailure && err.type === 'NotFound') return { key, exists: false, size: 0, valid: false, problem: 'object not found' };
        throw err;
      }
      const size = head.ContentLength ?? 0;
      const lastModified = head.LastModified?.toISOString();
      if (size === 0) return { key, exists: true, size, lastModified, valid: false, problem: 'object is empty' };
      const end = Math.min(size, headerBytes) - 1;
      const read = await inS3(`read the first ${end + 1} bytes of s3://${Bucket}/${key}`, async () => {
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
        const head = await inS3(`head s3://${Bucket}/${key}`, () => client.send(new HeadObjectCommand({ Bucket, Key: key })));
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
      await inS3(`put s3://${Bucket}/${key}`, async () => {
        if (!multipart) {
          await client.send(new PutObjectCommand(params));
          return;
        }
        const upload = new Upload({ client, params, partSize: evidenceMultipartThreshold, queueSize: 2, leavePartsOnError: false });
        await upload.done();
      });
      return { ...result, written: true };
    },

    /** See deleteOldBackups in backup-retention.ts: the floor, the prefix rules, the manifest. */
    async deleteOldBackups(input: DeleteOldBackupsInput): Promise<DeleteOldBackupsResult> {
      const { s3: client, bucket: Bucket } = requireS3(s3, bucket);
      return deleteOldBackups({ client, bucket: Bucket, backupPrefix, evidencePrefix, allowedPrefixes, floor: backupFloor }, input);
    },
  };
}
