import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { throwIfCancelled } from './cancellation';
import { callsTo, failure, invalidInput } from './errors';

const inS3 = callsTo('S3');

export interface S3ObjectListing {
  key: string;
  size: number;
  lastModified: Date;
}

export function requireS3(s3: S3Client | undefined, bucket: string | undefined): { s3: S3Client; bucket: string } {
  if (!s3 || !bucket) throw failure('InvalidInput', 'S3 is not configured (S3_BUCKET)');
  return { s3, bucket };
}

export function validateKeyText(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalidInput(`${what}: expected a non-empty string`);
  if (value.length > 1024) throw invalidInput(`${what}: longer than 1024 characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalidInput(`${what}: contains control characters`);
  if (value.startsWith('/') || value.split('/').some((part) => part === '..' || part === '.')) {
    throw invalidInput(`${what} "${value}": no leading "/" and no "." or ".." segments`);
  }
  return value;
}

/** Every object under the prefix (ListObjectsV2 followed to the end); heartbeats between pages. */
export async function listAllObjects(client: S3Client, Bucket: string, prefix: string): Promise<S3ObjectListing[]> {
  const objects: S3ObjectListing[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await inS3(`list s3://${Bucket}/${prefix}`, () => client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken, MaxKeys: 1000 })));
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
