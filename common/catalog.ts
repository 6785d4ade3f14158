import type { z } from 'zod';
import { dbConnectionExhaustionInput } from './inputs/db-connection-exhaustion';
import { certificateExpiryInput } from './inputs/certificate-expiry';
import { redisMemoryPressureInput } from './inputs/redis-memory-pressure';
import { diskPressureInput } from './inputs/disk-pressure';
import { podCrashLoopInput } from './inputs/pod-crash-loop';
import { rollbackDeploymentInput } from './inputs/rollback-deployment';
import { rotateDatabasePasswordInput } from './inputs/rotate-database-password';
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

export const catalog: Record<string, CatalogEntry> = {
  preflight: {
    name: 'preflight',
    kind: 'utility',
    description: 'Checks reachability and the permissions the runbooks need on every configured target; changes nothing.',
    inputSchema: preflightInputSchema,
    targetOf: (input) => (Array.isArray(input.targets) ? [...(input.targets as string[])].sort().join('+') : 'all'),
  },
  dailyHealthCheck: { name: 'dailyHealthCheck', kind: 'maintenance', description: '每日检查清单: pods, services, ingress, HPA, PVCs; pod/node/database volume usage; ERROR lines in the app, database and Redis logs; the newest backups and latest.sql. PASS/WARN/FAIL report to S3; changes nothing.', inputSchema: dailyHealthCheckInput, targetOf: (input) => String(input.namespace) },
  weeklyReview: { name: 'weeklyReview', kind: 'maintenance', description: '每周检查清单: P95, error rate, DB connections, cache hit rate, CPU and memory against the manual\'s thresholds; login failures, 401/403 lines, certificate expiry; database size, largest tables, slowest statements; delete sessions expired over 7 days ago (approved, or by policy when scheduled) and VACUUM ANALYZE.', inputSchema: weeklyReviewInput, targetOf: (input) => String(input.namespace) },
  monthlyReview: { name: 'monthlyReview', kind: 'maintenance', description: '每月检查清单: 30-day trends and a 3-month forecast of CPU, memory, disk and database size; unused resources; a disaster-recovery drill restoring the newest backup into a scratch database; a plan-mode rollbackDeployment as the emergency-plan check.', inputSchema: monthlyReviewInput, targetOf: (input) => String(input.namespace) },
  dbConnectionExhaustion: {
    name: 'dbConnectionExhaustion',
    kind: 'fault',
    description: '场景2: connections vs max_connections; terminate old idle connections, raise max_connections and restart the database (each approved).',
    inputSchema: dbConnectionExhaustionInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  certificateExpiry: { name: 'certificateExpiry', kind: 'fault', description: '场景5: Certificate status, days until notAfter, events, the ingress; delete the Certificate and re-apply the ingress (each approved), wait for Ready.', inputSchema: certificateExpiryInput, targetOf: (input) => `${input.namespace}/${input.certificate}` },
  redisMemoryPressure: { name: 'redisMemoryPressure', kind: 'fault', description: '场景3: INFO memory, DBSIZE, maxmemory-policy, session keys, the Redis memory limit; delete session keys, raise the memory limit (x1.5, capped) and set maxmemory-policy allkeys-lru (each approved).', inputSchema: redisMemoryPressureInput, targetOf: (input) => `${input.namespace}/${input.deployment}` },
  diskPressure: { name: 'diskPressure', kind: 'fault', description: '场景4: PVC capacity and StorageClass, df/du of the volume, logs older than 7 days, backups older than 30 days; delete the old logs, expand the PVC (only if its StorageClass allows) and delete the old backups (each approved).', inputSchema: diskPressureInput, targetOf: (input) => `${input.namespace}/${input.pvc}` },
  podCrashLoop: { name: 'podCrashLoop', kind: 'fault', description: '场景1: pod status and restarts, pod events, previous container logs, usage vs limits, rollout history; OOMKilled: raise the memory limit (x1.5, capped), code error: roll back to the previous revision (each approved); config error: no change, the report names the missing key.', inputSchema: podCrashLoopInput, targetOf: (input) => `${input.namespace}/${input.deployment}` },
  rollbackDeployment: { name: 'rollbackDeployment', kind: 'emergency', description: '快速回滚: rollout history (revisions, images, change-cause, age); roll back to the previous or a given revision (approved), wait for the rollout and verify the pods are ready.', inputSchema: rollbackDeploymentInput, targetOf: (input) => `${input.namespace}/${input.deployment}` },
  rotateDatabasePassword: { name: 'rotateDatabasePassword', kind: 'security', description: '定期轮换密钥: a new password generated in the worker and staged in the Secret (never in the history); ALTER ROLE to it (SCRAM verifier), promote it in the Secret keeping the old one, rolling restart of the app verified ready (each approved); the old password restored when the rotation does not finish.', inputSchema: rotateDatabasePasswordInput, targetOf: (input) => `${input.namespace}/${input.secret}` },
};

export function workflowIdFor(entry: CatalogEntry, input: Record<string, unknown>): string {
  return `${entry.name}/${entry.targetOf(input)}`;
}
