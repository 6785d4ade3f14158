import { WebClient } from '@slack/web-api';
import { S3Client } from '@aws-sdk/client-s3';
import { KubeConfig } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import type { Logger } from '@temporalio/worker';
import Redis from 'ioredis';
import { Pool } from 'pg';
import type { ActivityDeps } from '../activities';
import type { RunbookConfig } from '../config/schema';

export interface BuiltDependencies {
  deps: ActivityDeps;
  /** Closes every client; safe to call once the worker has stopped. */
  close(): Promise<void>;
}

export function buildKubeConfig(kubernetes: NonNullable<RunbookConfig['kubernetes']>): KubeConfig {
  const kube = new KubeConfig();
  if (kubernetes.mode === 'in-cluster') {
    kube.loadFromCluster();
  } else {
    kube.loadFromFile(kubernetes.kubeconfigPath);
    if (kubernetes.context) kube.setCurrentContext(kubernetes.context);
  }
  return kube;
}

/** Builds the real clients for every configured target. Connections are lazy: a down target fails its checks, not the worker. */
export function buildDependencies(config: RunbookConfig, logger: Logger, temporalClient?: Client): BuiltDependencies {
  const pool = config.postgres ? new Pool({ connectionString: config.postgres.url, max: 5, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30_000, application_name: 'runbook-worker' }) : undefined;
  pool?.on('error', (err) => logger.warn('PostgreSQL pool client error', { error: err.message }));

  const redis = config.redis
    ? new Redis(config.redis.url, {
        lazyConnect: true,
        connectTimeout: 5000,
        maxRetriesPerRequest: 2,
        retryStrategy: (attempt) => Math.min(attempt * 500, 5000),
      })
    : undefined;
  let lastRedisError = '';
  redis?.on('error', (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt; once per distinct message is enough.
    if (err.message !== lastRedisError) logger.warn('Redis connection error', { error: err.message });
    lastRedisError = err.message;
  });
  redis?.on('ready', () => (lastRedisError = ''));

  const s3 = config.s3
    ? new S3Client({
        endpoint: config.s3.endpoint,
        region: config.s3.region,
        forcePathStyle: config.s3.forcePathStyle,
        credentials: config.s3.accessKeyId && config.s3.secretAccessKey ? { accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey } : undefined,
        maxAttempts: 3,
        requestHandler: { connectionTimeout: 5000, requestTimeout: 60_000 },
      })
    : undefined;

  const deps: ActivityDeps = {
    allowlists: config.allowlists,
    approvers: config.approvers,
    approvals: config.approvals,
    checklistThresholds: config.checklists.thresholds,
    kube: config.kubernetes ? buildKubeConfig(config.kubernetes) : undefined,
    kubernetesAuditLog: config.kubernetes?.auditLogPath,
    sealedSecrets: config.sealedSecrets,
    pool,
    databaseUrl: config.postgres?.url,
    restoreDrillUrl: config.postgres?.restoreDrillUrl,
    redis,
    s3:
      s3 && config.s3
        ? {
            client: s3,
            bucket: config.s3.bucket,
            backupPrefix: config.s3.backupPrefix,
            evidencePrefix: config.s3.evidencePrefix,
            backupFloor: { keepNewest: config.s3.backupKeepNewest, minAgeDays: config.s3.backupMinAgeDays },
          }
        : undefined,
    prometheusUrl: config.prometheus?.url,
    webhookUrl: config.notifications.webhookUrl,
    // Temporal retries the activity; the client's own retries would only delay that.
    slack: config.slack ? { web: new WebClient(config.slack.botToken, { slackApiUrl: config.slack.apiUrl, retryConfig: { retries: 0 } }), channel: config.slack.channel } : undefined,
    temporal: temporalClient && { client: temporalClient, taskQueue: config.temporal.taskQueue },
  };
  return {
    deps,
    async close() {
      await Promise.allSettled([pool?.end(), redis?.quit().catch(() => redis.disconnect())]);
      s3?.destroy();
    },
  };
}
