import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { PreflightRow } from '../common/preflight';
import { notConfigured, runChecks } from './preflight-checks';

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

export function createS3Activities({ s3, bucket, backupPrefix, evidencePrefix, allowedPrefixes }: S3Deps) {
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
  };
}
