import type { z } from 'zod';
import { dbConnectionExhaustionInput } from './inputs/db-connection-exhaustion';
import { databaseOptimizationInput } from './inputs/database-optimization';
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
  /**
   * Other objects the run changes, by lock name (`<namespace>/<name>`, the target string of the
   * runbook that targets that object): each is locked with the target around every apply.
   */
  locksOf?(input: Record<string, unknown>): string[];
}

/** The catalog, each entry with its own input schema's type (`satisfies`), so runbooks take their identity and typed input from it. */
export const catalog = {
  preflight: {
    name: 'preflight',
    kind: 'utility',
    description: "every configured target's reachability and the permissions the runbooks need; changes nothing",
    inputSchema: preflightInputSchema,
    targetOf: (input) => (Array.isArray(input.targets) ? [...(input.targets as string[])].sort().join('+') : 'all'),
  },
  dailyHealthCheck: {
    name: 'dailyHealthCheck',
    kind: 'maintenance',
    description:
      "每日检查清单: pods (ready, CrashLoopBackOff, OOMKilled, restarts), Services with endpoints, Ingress address and TLS secret, HPAs at max, PVCs bound; pod/node usage and the database volume (`df -h`); ERROR lines in the app's last 100 and the database's and Redis' last 50 log lines (the logs go to S3 evidence, the report names the key); the 5 newest backups, their age, `latest.sql` a valid dump. `only: [...]` runs a subset and may add `slow-statements` (pg_stat_statements). Changes nothing",
    inputSchema: dailyHealthCheckInput,
    targetOf: (input) => String(input.namespace),
  },
  weeklyReview: {
    name: 'weeklyReview',
    kind: 'maintenance',
    description:
      "每周检查清单: P95, error rate, DB connections, cache hit rate (the manual's PromQL), CPU and memory against limits; `login failed` and 401/403 lines (the log goes to S3 evidence), certificate days left; database size, 10 largest tables, 10 slowest statements; ⚠ delete `sessions` expired over 7 days ago (auto-approved by the `weekly-maintenance` policy when a schedule started the run), `VACUUM ANALYZE`; Redis优化 → 设置过期时间: the keys of `sessionPattern` (allowlisted; `session:*`) without a TTL, counted by SCAN + pipelined TTL (a sample when many), a WARN when any (the remedy: redisMemoryPressure's TTL step)",
    inputSchema: weeklyReviewInput,
    targetOf: (input) => String(input.namespace),
  },
  monthlyReview: {
    name: 'monthlyReview',
    kind: 'maintenance',
    description:
      '每月检查清单: 30-day trends and a 3-month linear forecast of CPU, memory, disk and database size against limits and volume; unused PVCs, deployments at 0, services without endpoints, old ReplicaSets, backups beyond retention; the disaster-recovery drill (newest backup restored into a scratch database owned by the drill role `restoreDrillUrl`, verified, dropped, timed; its SQL runs over the protocol, never through `psql`: psql meta-commands are refused, custom archives are converted by `pg_restore --file=-`; refused when the role is a superuser, has CREATEROLE or can connect to production; extensions it may not create are skipped); `rollbackDeployment` in plan mode',
    inputSchema: monthlyReviewInput,
    targetOf: (input) => String(input.namespace),
  },
  databaseOptimization: {
    name: 'databaseOptimization',
    kind: 'maintenance',
    description:
      "性能优化 → 数据库优化: the manual's four indexes (valid, missing, or an INVALID leftover of a failed concurrent build) with their sizes, the `slowStatements` (10) slowest statements with the indexes that may serve them, each with its plan when it is a single plain `SELECT` (EXPLAIN without ANALYZE of the generic plan, in a read-only transaction with a statement timeout, rolled back; others as text), table and btree index bloat estimated from pg_stats; ⚠ create the missing indexes `CONCURRENTLY` (an INVALID leftover dropped and rebuilt; a build still running in another session, e.g. of a killed worker, is waited for, never doubled), ⚠ `REINDEX CONCURRENTLY` (an interrupted rebuild's INVALID `_ccnew` dropped first) the indexes whose bloat is at least `reindexBloatAbove` (0.4, at least 0.2) and size `reindexMinBytes` (10 MB), at most `maxReindex` (3), `ANALYZE` of the tables touched; sizes before and after in the report. Optional monthly schedule, off by default",
    inputSchema: databaseOptimizationInput,
    targetOf: (input) => String(input.database),
  },
  dbConnectionExhaustion: {
    name: 'dbConnectionExhaustion',
    kind: 'fault',
    description:
      '场景2: connections against `max_connections` by state, application and age; ⚠ terminate old idle connections (at most `maxTerminate`), ⚠ raise `max_connections` (`ALTER SYSTEM`), ⚠ restart the database deployment and wait until it accepts connections; a deployment whose pods mount a ReadWriteOnce volume and roll with RollingUpdate is scaled to 0, waited on until no pod of it exists, and scaled back (never two servers on one volume; a cancel while at 0 still scales back once no pod is left; a failure while at 0 leaves it at 0 and the report says how to restore). A restart, rollback, new resources or added replicas from any runbook are refused on such a deployment',
    inputSchema: dbConnectionExhaustionInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  certificateExpiry: {
    name: 'certificateExpiry',
    kind: 'fault',
    description:
      "场景5: Certificate conditions, days to `notAfter`, events, the ingress, cert-manager's logs when `certManager` is given; ⚠ delete the Certificate and re-apply the ingress (server-side apply) so cert-manager issues it again, wait for Ready (up to `readyTimeoutSeconds`); ends `failed` with the evidence when Ready never comes",
    inputSchema: certificateExpiryInput,
    targetOf: (input) => `${input.namespace}/${input.certificate}`,
    // The Ingress it re-applies, under trafficControl's lock name for it.
    locksOf: (input) => [`${input.namespace}/${input.ingress}`],
  },
  redisMemoryPressure: {
    name: 'redisMemoryPressure',
    kind: 'fault',
    description:
      "场景3: INFO memory, DBSIZE, policy, session keys and those without a TTL (SCAN + pipelined TTL; above `ttlSampleSize` keys, 10000, estimated from a sample); ⚠ delete `session:*` keys (SCAN + UNLINK, capped, resumable, counted exactly across retries; a `sessionPattern` outside `ALLOWED_REDIS_KEY_PATTERNS` is refused before Redis is read), ⚠ set the manual's TTL (Redis优化 → 设置过期时间: `sessionTtlSeconds`, 3600, 60 s to 30 days) on the session keys that have none (`EXPIRE … NX`: a key's own TTL stays; capped by `maxKeys`, resumable like the delete; after the delete, so it is what is left when the delete is rejected; verified by recounting the keys without a TTL), ⚠ raise the Redis memory limit ×1.5 (capped; the new pod template restarts Redis, so the run waits for the rollout), ⚠ raise `maxmemory` when it is set and used above `raiseWhenUsageAbove` (Redis refuses writes at its own maxmemory whatever the container limit): the same share of the raised limit, else ×1.5, never above `maxmemoryShareOfLimit` (0.8) of the limit, computed once from the diagnosis; ⚠ set `maxmemory-policy allkeys-lru`. `CONFIG SET` does not survive a restart: the report says to put maxmemory and the policy in the Redis config",
    inputSchema: redisMemoryPressureInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  diskPressure: {
    name: 'diskPressure',
    kind: 'fault',
    description:
      '场景4: PVC capacity, `df`/`du`, old logs, old backups; ⚠ delete logs older than 7 days, ⚠ expand the PVC (only where its StorageClass allows), ⚠ delete S3 backups older than 30 days (never `latest.sql`, never the newest 7 dated backups whatever their age, never younger than 7 days, only under the backup prefix and never under the evidence prefix: floors in `S3_BACKUP_KEEP_NEWEST`/`S3_BACKUP_MIN_AGE_DAYS`; refused before anything is read; the chosen keys are written to `runbooks/deletions/` first, so a retry counts exactly)',
    inputSchema: diskPressureInput,
    targetOf: (input) => `${input.namespace}/${input.pvc}`,
  },
  podCrashLoop: {
    name: 'podCrashLoop',
    kind: 'fault',
    description:
      '场景1: pod status, events, previous logs, usage vs limits, rollout history; OOMKilled → ⚠ raise the memory limit ×1.5 (capped); crash after a new rollout → ⚠ roll back to the previous revision; config error → no change, the report names the missing key',
    inputSchema: podCrashLoopInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  rollbackDeployment: {
    name: 'rollbackDeployment',
    kind: 'emergency',
    description:
      "快速回滚: rollout history (revisions with images, change-cause, age); ⚠ roll back to the previous revision or `toRevision` (a revision not in the history is refused), wait for the rollout, verify every new pod is ready; plan mode is monthlyReview's emergency-plan check",
    inputSchema: rollbackDeploymentInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  emergencyScale: {
    name: 'emergencyScale',
    kind: 'emergency',
    description:
      "紧急扩容: the deployment's replicas and resources, its pods and the HPA targeting it; ⚠ scale up to `replicas` (default 10, at most 100; below the current size is refused) — an HPA is raised with it (`minReplicas`, and `maxReplicas` when lower, to the new size: below its bounds or its metrics it would scale the deployment straight back); ⚠ raise `requests`/`limits` (only values already set, never lower); each waits until every pod is ready, then verifies. The size, HPA bounds and resources from before the first scale-up are recorded in the deployment's annotations `runbooks.example/emergency-scale-previous-size` and `-previous-resources`; a later run with `restore: true` puts exactly those back (⚠ each) and removes the records",
    inputSchema: emergencyScaleInput,
    targetOf: (input) => `${input.namespace}/${input.deployment}`,
  },
  trafficControl: {
    name: 'trafficControl',
    kind: 'emergency',
    description:
      '流量控制: the ingress (default `app-ingress`) and its annotations; one ⚠ step by `action`: `rate-limit` (`nginx.ingress.kubernetes.io/limit-rps` = `rps`, default 50), `maintenance-on` (`nginx.ingress.kubernetes.io/default-backend` = `maintenanceService`, default `maintenance-page`; refused when that Service does not exist), `maintenance-off` (default-backend back to what it was), `restore` (every annotation changed back); planned by a dry run (before → after). The first previous value of each is recorded as JSON in the ingress annotation `runbooks.example/previous-annotations`, so a later run restores it',
    inputSchema: trafficControlInput,
    targetOf: (input) => `${input.namespace}/${input.ingress}`,
  },
  rotateDatabasePassword: {
    name: 'rotateDatabasePassword',
    kind: 'security',
    description:
      "定期轮换密钥: `role` is required and must be in `allowlists.rotationRoles` (`ALLOWED_ROTATION_ROLES`, default the app's login role `short_drama_app`); superusers, `REPLICATION` and `BYPASSRLS` roles, the worker's own role and `pg_*` are refused before anything changes. Approved once, as one plan: ⚠ a new password generated in the worker and staged as `<key>_NEXT` of the Secret, ⚠ `ALTER ROLE` to it (SCRAM-SHA-256 verifier computed in the worker), ⚠ `<key>` ← the new one, `<key>_PREVIOUS` ← the old, ⚠ rolling restart of the app, verified ready. If it does not finish after `ALTER ROLE` (a failure, a Kubernetes API outage, a cancellation, also from the Temporal UI), the old password is put back in PostgreSQL and the Secret, retried through outages; when that still fails, the initiator and approvers are told the exact commands. No password enters the history, logs or report. Open sessions keep working; new logins need the new password from `ALTER ROLE` until the restart. Where a `SealedSecret` owns the Secret (使用Sealed Secrets), the new password is sealed with the controller's certificate (`SEALED_SECRETS_CERT_URL`) into the SealedSecret, never patched into the Secret, and each change waits for the controller's unseal",
    inputSchema: rotateDatabasePasswordInput,
    targetOf: (input) => `${input.namespace}/${input.secret}`,
    // The app it restarts, under the lock name of the runbooks that target it (rollbackDeployment, emergencyScale).
    locksOf: (input) => [`${input.namespace}/${input.appDeployment}`],
  },
  provisionReadonlyAccess: {
    name: 'provisionReadonlyAccess',
    kind: 'security',
    description:
      'RBAC配置: ServiceAccount `readonly-user`, Role `readonly` (get/list/watch on pods, services, deployments; read verbs only, never Secrets, never `pods/exec`, `attach`, `portforward`, `ephemeralcontainers` or any `*/proxy`, whatever the verb) and RoleBinding `readonly-binding`: ⚠ one server-side apply of the three, planned by a dry run that lists what would be created or which fields differ (nothing when all match; a hand-edited Role is shown as a diff and put back); what the account may do is asked of the authorizer (SubjectAccessReview) before and after: its rules allowed, deleting pods, patching deployments, reading Secrets and `get`/`create` on each exec, attach, port-forward and proxy subresource denied; after the apply, any of those still allowed (by another binding) fails the step',
    inputSchema: provisionReadonlyAccessInput,
    targetOf: (input) => `${input.namespace}/${input.serviceAccount}`,
  },
  applyNetworkPolicy: {
    name: 'applyNetworkPolicy',
    kind: 'security',
    description:
      "网络策略: the manual's `app-network-policy` (app pods accept only the ingress controller on TCP 8000, reach only postgres 5432 and redis 6379; names, labels and ports are inputs); the pods each selector matches; ⚠ server-side apply, planned as a field-level diff of the live object against the desired one (added/changed/removed; nothing when equal); the live spec verified equal to the desired one",
    inputSchema: applyNetworkPolicyInput,
    targetOf: (input) => `${input.namespace}/${input.policy}`,
  },
  postIncidentReview: {
    name: 'postIncidentReview',
    kind: 'emergency',
    description:
      "事后分析: the app's logs of the last `sinceMinutes` (60) from every pod and container of `appDeployment` (the previous instance too after a restart), the namespace's events of the window, a configuration snapshot (all workloads, Services, HPAs, ConfigMaps, PVCs, Ingress; Secrets by name, type and key, never values; literal `env` values, ConfigMap values that look like credentials and `last-applied-configuration` dropped, `user:password@` in URLs masked), and the namespace's API audit events of the window (审计日志: read from the kube-apiserver's audit log `KUBERNETES_AUDIT_LOG`, written with `deploy/kubernetes/audit-policy.yaml`, the manual's policy with workloads added; Secrets at Metadata only, never a value) go from the activity straight to S3 under `runbooks/evidence/postIncidentReview/`; the history holds keys, sizes and sha256 only. The report's timeline names who changed which object and when (a person's rollout, with the ReplicaSet it created, first; system:* users counted, not listed); without an audit log configured the report says so. The incident report's impact, root cause, solution and prevention come from the input or are generated from the evidence. Changes nothing; the workflow id is `postIncidentReview/<namespace>/incident-<incidentId>` (default id: the start time to the second)",
    inputSchema: postIncidentReviewInput,
    targetOf: postIncidentReviewTarget,
  },
} satisfies Record<string, CatalogEntry>;

export type Catalog = typeof catalog;
export type RunbookName = keyof Catalog;

export function workflowIdFor(entry: CatalogEntry, input: Record<string, unknown>): string {
  return `${entry.name}/${entry.targetOf(input)}`;
}
