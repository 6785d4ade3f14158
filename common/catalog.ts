import type { z } from 'zod';
import { dbConnectionExhaustionInput } from './inputs/db-connection-exhaustion';
import { certificateExpiryInput } from './inputs/certificate-expiry';
import { redisMemoryPressureInput } from './inputs/redis-memory-pressure';
import { diskPressureInput } from './inputs/disk-pressure';
import { podCrashLoopInput } from './inputs/pod-crash-loop';
import { rollbackDeploymentInput } from './inputs/rollback-deployment';
import { emergencyScaleInput } from './inputs/emergency-scale';
import { trafficControlInput } from './inputs/traffic-control';
import { rotateDatabasePasswordInput } from './inputs/rotate-database-password';
import { provisionReadonlyAccessInput } from './inputs/provision-readonly-access';
import { applyNetworkPolicyInput } from './inputs/apply-network-policy';
import { postIncidentReviewInput, postIncidentReviewTarget } from './inputs/post-incident-review';
import { preflightInputSchema } from './preflight-input';
import { dailyHealthCheckInput, monthlyReviewInput, weeklyReviewInput } from './inputs/checklists';

export type RunbookKind = 'fault' | 'emergency' | 'maintenance' | 'security' | 'utility';

/** One workflow type of ../shared/runbook-catalog.md as clients see it. */
export interface CatalogEntry {
  name: string;
  kind: RunbookKind;
  description: string;
  inputSchema: z.ZodType;
  /** What the run is about; with the name it makes the workflow id, so a second trigger joins the first. */
  targetOf(input: Record<string, unknown>): string;
}

/** The catalog, each entry with its own input schema's type (`satisfies`), so runbooks take their identity and typed input from it. */
export const catalog = {
  preflight: {
    name: 'preflight',
    kind: 'utility',
    description: 'Checks reachability and the permissions the runbooks need on every configured target; changes nothing.',
    inputSchema: preflightInputSchema,
    targetOf: (input) => (Array.isArray(input.targets) ? [...(input.targets as string[])].sort().join('+') : 'all'),
  },
  dailyHealthCheck: {
    name: 'dailyHealthCheck',
    kind: 'maintenance',
    description:
      '每日检查清单: pods, services, ingress, HPA, PVCs; pod/node/database volume usage; ERROR lines in the app, database and Redis logs; the newest backups and latest.sql (only: a subset, may add slow-statements). PASS/WARN/FAIL report to S3; changes nothing.',
    inputSchema: dailyHealthCheckInput,
    targetOf: (input) => String(input.namespace),
  },
  weeklyReview: {
    name: 'weeklyReview',
    kind: 'maintenance',
    description:
      "每周检查清单: P95, error rate, DB connections, cache hit rate, CPU and memory against the manual's thresholds; login failures, 401/403 lines, certificate expiry; database size, largest tables, slowest statements; delete sessions expired over 7 days ago (approved, or by policy when scheduled) and VACUUM ANALYZE.",
    inputSchema: weeklyReviewInput,
    targetOf: (input) => String(input.namespace),
  },
  monthlyReview: {
    name: 'monthlyReview',
    kind: 'maintenance',
    description:
      '每月检查清单: 30-day trends and a 3-month forecast of CPU, memory, disk and database size; unused resources; a disaster-recovery drill restoring the newest backup into a scratch database; a plan-mode rollbackDeployment as the emergency-plan check.',
    inputSchema: monthlyReviewInput,
    targetOf: (input) => String(input.namespace),
  },
  dbConnectionExhaustion: {
    name: 'dbConnectionExhaustion',
    kind: 'fault',
    description: '场景2: connections vs max_connections; terminate old idle connections, raise max_connections and restart the database (each approved).',
    inputSchema: dbConnectionExhaustionInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  certificateExpiry: {
    name: 'certificateExpiry',
    kind: 'fault',
    description: '场景5: Certificate status, days until notAfter, events, the ingress; delete the Certificate and re-apply the ingress (each approved), wait for Ready.',
    inputSchema: certificateExpiryInput,
    targetOf: (input) => `${input.namespace}/${input.certificate}`,
  },
  redisMemoryPressure: {
    name: 'redisMemoryPressure',
    kind: 'fault',
    description:
      '场景3: INFO memory, DBSIZE, maxmemory-policy, session keys, the Redis memory limit; delete session keys, raise the memory limit (x1.5, capped; waits for the Redis rollout), raise maxmemory when set and near full (same share of the limit, capped) and set maxmemory-policy allkeys-lru (each approved).',
    inputSchema: redisMemoryPressureInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  diskPressure: {
    name: 'diskPressure',
    kind: 'fault',
    description:
      '场景4: PVC capacity and StorageClass, df/du of the volume, logs older than 7 days, backups older than 30 days; delete the old logs, expand the PVC (only if its StorageClass allows) and delete the old backups (each approved).',
    inputSchema: diskPressureInput,
    targetOf: (input) => `${input.namespace}/${input.pvc}`,
  },
  podCrashLoop: {
    name: 'podCrashLoop',
    kind: 'fault',
    description:
      '场景1: pod status and restarts, pod events, previous container logs, usage vs limits, rollout history; OOMKilled: raise the memory limit (x1.5, capped), code error: roll back to the previous revision (each approved); config error: no change, the report names the missing key.',
    inputSchema: podCrashLoopInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  rollbackDeployment: {
    name: 'rollbackDeployment',
    kind: 'emergency',
    description: '快速回滚: rollout history (revisions, images, change-cause, age); roll back to the previous or a given revision (approved), wait for the rollout and verify the pods are ready.',
    inputSchema: rollbackDeploymentInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  emergencyScale: {
    name: 'emergencyScale',
    kind: 'emergency',
    description:
      "紧急扩容: the deployment, its pods and HPA; scale up (default 10, at most 100, never down) with the HPA's bounds raised to hold it, raise requests/limits (only up), each approved and waited for until every pod is ready; the size before is recorded on the deployment, and restore: true puts it back (approved).",
    inputSchema: emergencyScaleInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  trafficControl: {
    name: 'trafficControl',
    kind: 'emergency',
    description:
      "流量控制: the ingress's annotations; rate-limit (limit-rps, default 50), maintenance-on (default-backend = the maintenance Service, refused when it does not exist), maintenance-off, restore (each approved, planned by a dry run); the previous values are recorded on the ingress so a later run restores them.",
    inputSchema: trafficControlInput,
    targetOf: (input) => `${input.namespace}/${input.ingress}`,
  },
  rotateDatabasePassword: {
    name: 'rotateDatabasePassword',
    kind: 'security',
    description:
      '定期轮换密钥: a new password generated in the worker and staged in the Secret (never in the history); ALTER ROLE to it (SCRAM verifier), promote it in the Secret keeping the old one, rolling restart of the app verified ready (each approved); the old password restored when the rotation does not finish.',
    inputSchema: rotateDatabasePasswordInput,
    targetOf: (input) => `${input.namespace}/${input.secret}`,
  },
  provisionReadonlyAccess: {
    name: 'provisionReadonlyAccess',
    kind: 'security',
    description:
      'RBAC配置: the read-only ServiceAccount, its Role (get/list/watch on pods, services, deployments) and the RoleBinding, server-side applied in one approved step planned by a dry run (created, or the fields that differ; nothing when all match); access verified by SubjectAccessReview (may list pods, may not delete them).',
    inputSchema: provisionReadonlyAccessInput,
    targetOf: (input) => `${input.namespace}/${input.serviceAccount}`,
  },
  applyNetworkPolicy: {
    name: 'applyNetworkPolicy',
    kind: 'security',
    description:
      "网络策略: the manual's NetworkPolicy (ingress only from the ingress controller on 8000; egress only to postgres 5432 and redis 6379), server-side applied (approved) after a dry-run diff against the live object; the live spec verified equal to the desired one.",
    inputSchema: applyNetworkPolicyInput,
    targetOf: (input) => `${input.namespace}/${input.policy}`,
  },
  postIncidentReview: {
    name: 'postIncidentReview',
    kind: 'emergency',
    description:
      '事后分析: the app logs of the last hour from every pod, the namespace events and a configuration snapshot (Secrets by name and key only) into S3; the incident report with timeline, impact, root cause, solution and prevention (given, or generated from the evidence). Changes nothing; one run per incidentId.',
    inputSchema: postIncidentReviewInput,
    targetOf: postIncidentReviewTarget,
  },
} satisfies Record<string, CatalogEntry>;

export type Catalog = typeof catalog;
export type RunbookName = keyof Catalog;

export function workflowIdFor(entry: CatalogEntry, input: Record<string, unknown>): string {
  return `${entry.name}/${entry.targetOf(input)}`;
}
