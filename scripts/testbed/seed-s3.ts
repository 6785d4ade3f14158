import { spawnSync } from 'node:child_process';
import { CreateBucketCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

export interface DumpSource {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Real pg_dump output; the password reaches pg_dump through its environment, never its arguments. */
export function pgDump(source: DumpSource, format: 'plain' | 'custom'): Buffer {
  const result = spawnSync('pg_dump', ['-h', source.host, '-p', String(source.port), '-U', source.user, `--format=${format}`, '--no-owner', source.database], {
    env: { ...process.env, PGPASSWORD: source.password },
    maxBuffer: 512 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`pg_dump failed: ${String(result.stderr).slice(-1000)}`);
  return result.stdout;
}

function isoDate(daysAgo: number): string {
  return new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10);
}

/** The backup layout of the manual: dated dumps and latest.sql under database/. Seeds only an empty prefix. */
export async function seedBackupBucket(s3: S3Client, bucket: string, source: DumpSource): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }
  const existing = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'database/', MaxKeys: 1 }));
  if ((existing.KeyCount ?? 0) > 0) return;
  const plain = pgDump(source, 'plain');
  const custom = pgDump(source, 'custom');
  const objects: Array<[string, Buffer, string]> = [
    [`database/${source.database}_${isoDate(3)}.sql`, plain, 'application/sql'],
    [`database/${source.database}_${isoDate(2)}.sql`, plain, 'application/sql'],
    [`database/${source.database}_${isoDate(1)}.dump`, custom, 'application/octet-stream'],
    ['database/latest.sql', plain, 'application/sql'],
  ];
  for (const [key, body, contentType] of objects) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
  }
}
