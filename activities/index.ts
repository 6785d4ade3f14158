import type { S3Client } from '@aws-sdk/client-s3';
import type { KubeConfig } from '@kubernetes/client-node';
import type Redis from 'ioredis';
import type { Pool } from 'pg';
import type { AllowLists } from '../config/schema';
import { createKubernetesActivities } from './kubernetes';
import { createNotifyActivities } from './notify';
import { createPostgresActivities } from './postgres';
import { createPrometheusActivities } from './prometheus';
import { createRedisActivities } from './redis';
import { createS3Activities } from './s3';

/** The real clients the worker builds from configuration; an absent one means that target is not configured. */
export interface ActivityDeps {
  allowlists: AllowLists;
  kube?: KubeConfig;
  pool?: Pool;
  redis?: Redis;
  s3?: { client: S3Client; bucket: string; backupPrefix: string; evidencePrefix: string };
  prometheusUrl?: string;
  webhookUrl?: string;
}

export function createActivities(deps: ActivityDeps) {
  const { allowlists } = deps;
  return {
    ...createKubernetesActivities({ kube: deps.kube, allowedNamespaces: allowlists.namespaces }),
    ...createPostgresActivities({ pool: deps.pool, allowedDatabases: allowlists.databases }),
    ...createRedisActivities({ redis: deps.redis, allowedKeyPatterns: allowlists.redisKeyPatterns }),
    ...createS3Activities({
      s3: deps.s3?.client,
      bucket: deps.s3?.bucket,
      backupPrefix: deps.s3?.backupPrefix ?? 'database/',
      evidencePrefix: deps.s3?.evidencePrefix ?? 'runbooks/',
      allowedPrefixes: allowlists.s3Prefixes,
    }),
    ...createPrometheusActivities({ prometheusUrl: deps.prometheusUrl }),
    ...createNotifyActivities({ webhookUrl: deps.webhookUrl }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
