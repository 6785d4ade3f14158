import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import type { KubeConfig } from '@kubernetes/client-node';
import type Redis from 'ioredis';
import type { Pool } from 'pg';
import { checklistThresholdDefaults, type AllowLists, type ChecklistThresholds, type RunbookConfig } from '../config/schema';
import { createKubernetesActivities } from './kubernetes';
import { createAuditEvidenceActivities } from './audit-evidence';
import { createIncidentEvidenceActivities } from './incident-evidence';
import { createLogEvidenceActivities } from './log-evidence';
import { createNotifyActivities, type NotifyDeps } from './notify';
import { createPasswordRotationActivities } from './password-rotation';
import { createPostgresActivities } from './postgres';
import { createPrometheusActivities } from './prometheus';
import { createRedisActivities } from './redis';
import { createRunbookSupportActivities } from './runbook-support';
import { createS3Activities } from './s3';
import type { BackupFloor } from './backup-retention';

/** The real clients the worker builds from configuration; an absent one means that target is not configured. */
export interface ActivityDeps {
  allowlists: AllowLists;
  approvers: RunbookConfig['approvers'];
  approvals: RunbookConfig['approvals'];
  /** Daily/weekly/monthly checklist thresholds; the manual's numbers when absent. */
  checklistThresholds?: ChecklistThresholds;
  /** Slack's Web API for approval requests with buttons. */
  slack?: NotifyDeps['slack'];
  /** For target locks: starting a lock workflow needs a client. */
  temporal?: { client: Client; taskQueue: string };
  kube?: KubeConfig;
  /** The kube-apiserver's audit log as the worker sees it (KUBERNETES_AUDIT_LOG); postIncidentReview reads it. */
  kubernetesAuditLog?: string;
  /** 使用Sealed Secrets: the controller's certificate URL and how long to wait for an unseal (SEALED_SECRETS_*). */
  sealedSecrets?: { certUrl?: string; unsealTimeoutSeconds: number };
  pool?: Pool;
  /** For fresh connections while the server restarts and for password rotation. */
  databaseUrl?: string;
  /** The restore drill's own role (see PostgresDeps.restoreDrillUrl). */
  restoreDrillUrl?: string;
  redis?: Redis;
  s3?: { client: S3Client; bucket: string; backupPrefix: string; evidencePrefix: string; backupFloor?: BackupFloor };
  prometheusUrl?: string;
  webhookUrl?: string;
}

export function createActivities(deps: ActivityDeps) {
  const { allowlists } = deps;
  const s3 = createS3Activities({
    s3: deps.s3?.client,
    bucket: deps.s3?.bucket,
    backupPrefix: deps.s3?.backupPrefix ?? 'database/',
    evidencePrefix: deps.s3?.evidencePrefix ?? 'runbooks/',
    allowedPrefixes: allowlists.s3Prefixes,
    backupFloor: deps.s3?.backupFloor,
  });
  const kubernetes = createKubernetesActivities({ kube: deps.kube, allowedNamespaces: allowlists.namespaces });
  return {
    ...kubernetes,
    ...createPostgresActivities({
      pool: deps.pool,
      allowedDatabases: allowlists.databases,
      databaseUrl: deps.databaseUrl,
      restoreDrillUrl: deps.restoreDrillUrl,
      s3: deps.s3 && { client: deps.s3.client, bucket: deps.s3.bucket, backupPrefix: deps.s3.backupPrefix },
    }),
    ...createRedisActivities({ redis: deps.redis, allowedKeyPatterns: allowlists.redisKeyPatterns }),
    ...createPasswordRotationActivities({
      kube: deps.kube,
      allowedNamespaces: allowlists.namespaces,
      pool: deps.pool,
      databaseUrl: deps.databaseUrl,
      allowedDatabases: allowlists.databases,
      allowedRoles: allowlists.rotationRoles,
      sealedSecrets: deps.sealedSecrets,
    }),
    ...s3,
    ...createPrometheusActivities({ prometheusUrl: deps.prometheusUrl }),
    ...createIncidentEvidenceActivities({
      kube: deps.kube,
      allowedNamespaces: allowlists.namespaces,
      evidence: deps.s3 && { evidencePrefix: deps.s3.evidencePrefix, putEvidence: s3.putEvidence },
    }),
    ...createAuditEvidenceActivities({
      auditLogPath: deps.kubernetesAuditLog,
      allowedNamespaces: allowlists.namespaces,
      evidence: deps.s3 && { evidencePrefix: deps.s3.evidencePrefix, putEvidence: s3.putEvidence },
    }),
    ...createLogEvidenceActivities({
      getContainerLogs: kubernetes.getContainerLogs,
      evidence: deps.s3 && { evidencePrefix: deps.s3.evidencePrefix, putEvidence: s3.putEvidence },
    }),
    ...createNotifyActivities({ webhookUrl: deps.webhookUrl, slack: deps.slack }),
    ...createRunbookSupportActivities({
      allowlists,
      approvers: deps.approvers,
      approvals: deps.approvals,
      checklistThresholds: deps.checklistThresholds ?? checklistThresholdDefaults,
      s3: deps.s3 && { client: deps.s3.client, bucket: deps.s3.bucket, evidencePrefix: deps.s3.evidencePrefix, backupPrefix: deps.s3.backupPrefix, backupFloor: deps.s3.backupFloor },
      temporal: deps.temporal,
    }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
