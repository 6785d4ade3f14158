import { z } from 'zod';
import { defaultLanguage, languages } from '../common/texts';
import { roles, severities } from '../common/runbook';
import { parseSshPublicKey } from '../common/ssh-signature';
import { alertingSchema } from './alerting';

/** Namespaces no runbook may ever touch, whatever the allowlist says. */
export const forbiddenNamespaces = ['kube-system', 'kube-public', 'kube-node-lease'];

const hostPort = z.string().regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, { message: 'expected host:port, e.g. 127.0.0.1:7233' });
const httpUrl = z.url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL' });
/** A duration as Temporal takes it: a number and a unit (ms, s, m, h, d). */
const duration = z.string().regex(/^\d+(ms|s|m|h|d)$/, { message: 'expected a duration such as 90s, 15m, 4h' });
const port = z.coerce.number({ message: 'expected a port number' }).int().min(0, { message: 'expected a port number 0-65535' }).max(65535, { message: 'expected a port number 0-65535' });
const notWildcard = (what: string) =>
  z
    .string()
    .min(1)
    .refine((value) => !/^[*?]+$/.test(value) && value !== '.*', { message: `a wildcard-everything ${what} is refused` });

const timeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { message: 'expected a time of day HH:MM (24 h), e.g. 08:00' });
const weekday = z.enum(['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'], { message: 'expected a weekday name such as monday' });

/** A schedule on one day of each month (monthlyReview's, databaseOptimization's), with its defaults. */
function monthlySchedule(defaults: { enabled: boolean; dayOfMonth: number; at: string }) {
  return z
    .object({
      enabled: z.boolean().default(defaults.enabled),
      dayOfMonth: z.coerce.number().int().min(1).max(28, { message: 'expected a day 1-28 (every month has it)' }).default(defaults.dayOfMonth),
      at: timeOfDay.default(defaults.at),
    })
    .default(defaults);
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const positive = z.coerce.number({ message: 'expected a number' }).positive({ message: 'expected a positive number' });
const percent = z.coerce.number({ message: 'expected a number' }).min(0).max(100, { message: 'expected a percentage 0-100' });

/** The manual's numbers (日常运维) and an SRE's usual ones where the manual names none. */
export const checklistThresholdDefaults = {
  /** 每周: P95 < 2 s, error rate < 1 %, DB connections < 50, cache hit rate > 80 %, CPU < 70 %, memory < 80 %. */
  p95Seconds: 2,
  errorRatePercent: 1,
  dbConnections: 50,
  cacheHitRatePercent: 80,
  cpuPercent: 70,
  memoryPercent: 80,
  /** Volume use above this is a FAIL (the manual's disk alert fires at 80 %). */
  diskPercent: 80,
  /** Restarts of one pod above this are a WARN. */
  podRestarts: 5,
  /** ERROR lines in the app's last 100 log lines above this are a FAIL (any is a WARN). */
  errorLogLines: 0,
  /** The newest backup may be this old (a daily backup plus slack). */
  backupMaxAgeHours: 26,
  /** A certificate expiring sooner is a WARN, and a FAIL at a quarter of it. */
  certificateMinDays: 30,
  /** `login failed` lines in the app logs above this are a WARN. */
  loginFailures: 10,
  /** 401/403 lines in the app logs above this are a WARN. */
  authErrorLines: 20,
  /** A statement slower than this on average is a WARN. */
  slowStatementMeanMs: 1000,
  /** Backups older than this are beyond retention (monthly cost review). */
  backupRetentionDays: 30,
  /** A Deployment keeping more old ReplicaSets than this is flagged (monthly cost review; Kubernetes keeps 10 by default). */
  oldReplicaSets: 10,
};

const checklistThresholds = z
  .object({
    p95Seconds: positive.default(checklistThresholdDefaults.p95Seconds),
    errorRatePercent: percent.default(checklistThresholdDefaults.errorRatePercent),
    dbConnections: positive.default(checklistThresholdDefaults.dbConnections),
    cacheHitRatePercent: percent.default(checklistThresholdDefaults.cacheHitRatePercent),
    cpuPercent: percent.default(checklistThresholdDefaults.cpuPercent),
    memoryPercent: percent.default(checklistThresholdDefaults.memoryPercent),
    diskPercent: percent.default(checklistThresholdDefaults.diskPercent),
    podRestarts: z.coerce.number().int().min(0).default(checklistThresholdDefaults.podRestarts),
    errorLogLines: z.coerce.number().int().min(0).default(checklistThresholdDefaults.errorLogLines),
    backupMaxAgeHours: positive.default(checklistThresholdDefaults.backupMaxAgeHours),
    certificateMinDays: positive.default(checklistThresholdDefaults.certificateMinDays),
    loginFailures: z.coerce.number().int().min(0).default(checklistThresholdDefaults.loginFailures),
    authErrorLines: z.coerce.number().int().min(0).default(checklistThresholdDefaults.authErrorLines),
    slowStatementMeanMs: positive.default(checklistThresholdDefaults.slowStatementMeanMs),
    backupRetentionDays: z.coerce.number().int().min(1).default(checklistThresholdDefaults.backupRetentionDays),
    oldReplicaSets: z.coerce.number().int().min(0).default(checklistThresholdDefaults.oldReplicaSets),
  })
  .strict();

export type ChecklistThresholds = z.infer<typeof checklistThresholds>;

/** The manual's weekly cleanup of expired sessions is routine: approved by policy when a schedule started the run. */
export const defaultApprovalPolicies = [{ name: 'weekly-maintenance', runbooks: ['weeklyReview'], steps: ['delete-expired-sessions'], onlyScheduled: true }];

const sshPublicKey = z.string().refine(
  (line) => {
    try {
      parseSshPublicKey(line);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected an OpenSSH Ed25519 public key "ssh-ed25519 AAAA... [comment]" (as in git\'s allowed_signers)' },
);

/**
 * Who may decide, start or vouch: a person (approves in the roles given), a service (starts runs
 * with its own key, e.g. the alert bridge; never approves) or a channel (a chat endpoint that
 * signs decisions on behalf of the people it maps, only in the roles of `vouchesFor`).
 */
const identitySchema = z
  .object({
    id: z.string().min(1),
    name: z.string().optional(),
    kind: z.enum(['person', 'service', 'channel']).default('person'),
    roles: z.array(z.enum(roles)).default([]),
    publicKey: sshPublicKey.optional(),
    /** The person's Slack user id (U...), for approvals from Slack. */
    slackUserId: z
      .string()
      .regex(/^[UW][A-Z0-9]{2,}$/, { message: 'expected a Slack user id such as U012ABCDEF' })
      .optional(),
    /** For a channel: the roles it may vouch for. */
    vouchesFor: z.array(z.enum(roles)).optional(),
  })
  .strict()
  .superRefine((identity, ctx) => {
    if (identity.kind === 'person' && identity.roles.length === 0) ctx.addIssue({ code: 'custom', path: ['roles'], message: 'a person needs at least one role' });
    if (identity.kind !== 'person' && !identity.publicKey) ctx.addIssue({ code: 'custom', path: ['publicKey'], message: `a ${identity.kind} needs a publicKey` });
    if (identity.kind !== 'person' && identity.roles.length > 0) ctx.addIssue({ code: 'custom', path: ['roles'], message: `a ${identity.kind} approves nothing itself: roles are for persons` });
    if (identity.kind !== 'channel' && identity.vouchesFor) ctx.addIssue({ code: 'custom', path: ['vouchesFor'], message: 'only a channel vouches for others' });
  });

function uniqueIds(identities: Array<{ id: string }>, ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  for (const [index, { id }] of identities.entries()) {
    if (seen.has(id)) ctx.addIssue({ code: 'custom', path: [index, 'id'], message: `${id} is listed twice` });
    seen.add(id);
  }
}

/** AWS SSM's MinRequiredApprovals, by runbook, step and severity; the largest matching rule wins. */
const quorumRule = z
  .object({
    runbooks: z.array(z.string().min(1)).optional(),
    steps: z.array(z.string().min(1)).optional(),
    severities: z.array(z.enum(severities)).optional(),
    approvals: z.coerce.number().int().min(1).max(10),
  })
  .strict();

const base64Key = z.string().refine((key) => /^[A-Za-z0-9+/]{43}=$/.test(key) && Buffer.from(key, 'base64').length === 32, {
  message: 'expected a base64 AES-256 key of 32 bytes (44 characters), e.g. from `openssl rand -base64 32`',
});
const origin = z.string().regex(/^https?:\/\/[A-Za-z0-9.\-_[\]:]+$/, { message: 'expected an origin such as http://127.0.0.1:8233 (scheme, host and port, no path)' });

/**
 * AES-256-GCM encryption of every payload the runbooks put in history (config/payload-encryption.ts).
 * Encrypts with activeKeyId; any key listed decrypts, so rotating is: add the new key, make it
 * active, keep the old one while its histories matter. The codec server lets the Temporal UI decode.
 */
const payloadEncryptionSchema = z
  .object({
    keys: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { message: 'expected a key id of letters, digits, dot, dash or underscore' }), base64Key),
    /** The key that encrypts; may be left out when there is one key. */
    activeKeyId: z.string().min(1).optional(),
    codecServer: z
      .object({
        listen: hostPort,
        /** The bearer token every /encode and /decode must present. */
        token: z.string().min(16, { message: 'expected a token of at least 16 characters' }),
        /** Origins of the Temporal UIs allowed to call from a browser (CORS). */
        corsOrigins: z.array(origin).default([]),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((encryption, ctx) => {
    const ids = Object.keys(encryption.keys);
    if (ids.length === 0) ctx.addIssue({ code: 'custom', path: ['keys'], message: 'payload encryption needs at least one key' });
    else if (encryption.activeKeyId === undefined && ids.length > 1) ctx.addIssue({ code: 'custom', path: ['activeKeyId'], message: `name the key that encrypts: one of ${ids.join(', ')}` });
    else if (encryption.activeKeyId !== undefined && !ids.includes(encryption.activeKeyId)) {
      ctx.addIssue({ code: 'custom', path: ['activeKeyId'], message: `is not among the keys (${ids.join(', ')})` });
    }
  })
  .transform((encryption) => ({ ...encryption, activeKeyId: encryption.activeKeyId ?? Object.keys(encryption.keys)[0]! }));

/**
 * The kube-apiserver's audit log (JSON lines, --audit-log-format=json; rotated files beside it are
 * read too), as the worker sees it: postIncidentReview collects the namespace's events of its
 * window from it. Unset: the report says audit evidence is not configured.
 */
const auditLogPath = z
  .string()
  .min(1)
  .refine((path) => path.startsWith('/'), { message: 'expected an absolute path to the kube-apiserver audit log (--audit-log-path), e.g. /var/log/kubernetes/audit/audit.log' })
  .optional();

/** The S3 prefixes runbooks may write under by default: the backups and the runs' reports and evidence. */
export const defaultS3Prefixes: readonly string[] = ['database/', 'runbooks/'];

export const configSchema = z
  .object({
    temporal: z.object({
      address: hostPort,
      namespace: z.string().min(1).default('default'),
      taskQueue: z.string().min(1).default('runbooks'),
      apiKey: z.string().min(1).optional(),
      tls: z
        .object({
          enabled: z.boolean().default(false),
          serverName: z.string().optional(),
          caFile: z.string().optional(),
          certFile: z.string().optional(),
          keyFile: z.string().optional(),
        })
        .refine((tls) => Boolean(tls.certFile) === Boolean(tls.keyFile), { message: 'certFile and keyFile go together (mutual TLS)', path: ['keyFile'] })
        .default({ enabled: false }),
      /** Off unless keys are configured: then every client and worker encrypts payloads. */
      payloadEncryption: payloadEncryptionSchema.optional(),
    }),
    kubernetes: z
      .discriminatedUnion('mode', [
        z.object({ mode: z.literal('kubeconfig'), kubeconfigPath: z.string().min(1), context: z.string().min(1).optional(), auditLogPath }),
        z.object({ mode: z.literal('in-cluster'), auditLogPath }),
      ])
      .optional(),
    postgres: z
      .object({
        url: z.url({ protocol: /^postgres(ql)?$/, message: 'expected a postgres:// or postgresql:// URL' }),
        /**
         * The disaster-recovery drill's own role and password (the database part is replaced by the
         * scratch database): no superuser, no CREATEROLE, no login to production. Without it the drill refuses.
         */
        restoreDrillUrl: z.url({ protocol: /^postgres(ql)?$/, message: 'expected a postgres:// or postgresql:// URL' }).optional(),
      })
      .optional(),
    redis: z.object({ url: z.url({ protocol: /^rediss?$/, message: 'expected a redis:// or rediss:// URL' }) }).optional(),
    s3: z
      .object({
        endpoint: httpUrl.optional(),
        region: z.string().min(1).default('us-east-1'),
        bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { message: 'expected an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)' }),
        accessKeyId: z.string().min(1).optional(),
        secretAccessKey: z.string().min(1).optional(),
        forcePathStyle: z.boolean().default(false),
        /** Where the manual's database dumps live. */
        backupPrefix: z.string().endsWith('/', { message: 'expected a prefix ending in "/"' }).default('database/'),
        /** Where runbooks write evidence and reports. */
        evidencePrefix: z.string().endsWith('/', { message: 'expected a prefix ending in "/"' }).default('runbooks/'),
        /** The floor no backup deletion goes below: the newest N dated backups are kept whatever their age. */
        backupKeepNewest: z.coerce.number().int().min(1).max(10_000).default(7),
        /** Backups younger than this are never deleted, whatever a runbook's input asks. */
        backupMinAgeDays: z.coerce.number().int().min(1).max(36_500).default(7),
      })
      .refine((s3) => !s3.backupPrefix.startsWith(s3.evidencePrefix) && !s3.evidencePrefix.startsWith(s3.backupPrefix), {
        message: 'backupPrefix and evidencePrefix must not contain each other: backup deletion would reach reports and evidence',
        path: ['evidencePrefix'],
      })
      .refine((s3) => Boolean(s3.accessKeyId) === Boolean(s3.secretAccessKey), { message: 'accessKeyId and secretAccessKey go together', path: ['secretAccessKey'] })
      .optional(),
    prometheus: z.object({ url: httpUrl }).optional(),
    /**
     * 使用Sealed Secrets: where a password Secret is owned by a SealedSecret, rotateDatabasePassword
     * seals new values with the controller's certificate from `certUrl` (its `/v1/cert.pem`; in a
     * cluster the controller's Service, e.g. http://sealed-secrets-controller.kube-system:8080/v1/cert.pem)
     * and waits up to `unsealTimeoutSeconds` for the controller to unseal each change.
     */
    sealedSecrets: z.object({ certUrl: httpUrl.optional(), unsealTimeoutSeconds: z.coerce.number().int().min(1).max(60).default(40) }).default({ unsealTimeoutSeconds: 40 }),
    allowlists: z
      .object({
        namespaces: z
          .array(notWildcard('namespace').refine((ns) => !forbiddenNamespaces.includes(ns), { message: `${forbiddenNamespaces.join(', ')} can never be allowed` }))
          .default(['short-drama-prod']),
        databases: z.array(notWildcard('database')).default(['short_drama_prod']),
        /**
         * The login roles rotateDatabasePassword may change; any other is refused before it is read.
         * The default is the app's login role (the one its Secret's DATABASE_PASSWORD belongs to).
         */
        rotationRoles: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, { message: 'expected a PostgreSQL role name (no wildcards)' })).default(['short_drama_app']),
        redisKeyPatterns: z.array(notWildcard('Redis key pattern')).default(['session:*']),
        s3Prefixes: z
          .array(
            z
              .string()
              .min(1)
              .refine((prefix) => prefix !== '/' && prefix.endsWith('/'), { message: 'expected a prefix ending in "/" (and not the bucket root)' }),
          )
          .default([...defaultS3Prefixes]),
      })
      .default({ namespaces: ['short-drama-prod'], databases: ['short_drama_prod'], rotationRoles: ['short_drama_app'], redisKeyPatterns: ['session:*'], s3Prefixes: [...defaultS3Prefixes] }),
    approvers: z.array(identitySchema).default([]).superRefine(uniqueIds),
    approvals: z
      .object({
        /** How long each escalation tier waits, by severity (manual 应急响应: P0 15 min, P1 1 h, P2 4 h, P3 24 h). */
        escalation: z
          .object({ P0: duration.default('15m'), P1: duration.default('1h'), P2: duration.default('4h'), P3: duration.default('24h') })
          .default({ P0: '15m', P1: '1h', P2: '4h', P3: '24h' }),
        /** Routine steps approved without a person, recorded as "approved by policy NAME". */
        policies: z
          .array(
            z.object({
              name: z.string().min(1),
              runbooks: z.array(z.string().min(1)).min(1),
              steps: z.array(z.string().min(1)).min(1),
              /** Only for runs a schedule started (default), not for people's runs. */
              onlyScheduled: z.boolean().default(true),
            }),
          )
          .default(defaultApprovalPolicies),
        /**
         * Whether unsigned decisions are refused. Unset: on whenever any approver has a publicKey
         * (see approvalsVerified). Off with no keys at all: decisions are recorded as unverified.
         */
        requireSignatures: z.boolean().optional(),
        /** How long a signed statement may be valid (expiresAt - issuedAt); the CLI signs for this long. */
        statementLifetime: duration.default('10m'),
        quorum: z.array(quorumRule).default([]),
      })
      .default({ escalation: { P0: '15m', P1: '1h', P2: '4h', P3: '24h' }, policies: defaultApprovalPolicies, statementLifetime: '10m', quorum: [] }),
    notifications: z.object({ webhookUrl: httpUrl.optional() }).default({}),
    /** The language of reports, notifications, Current Details and checklist rows; fixed in each run's input at start. */
    language: z.enum(languages, { message: `expected one of ${languages.join(', ')}` }).default(defaultLanguage),
    /**
     * Approvals from Slack (the manual's #ops-alerts): requests posted with Approve / Reject
     * buttons by the worker; the alert bridge's /slack/interactivity endpoint checks Slack's
     * request signature, asks for a reason and sends the decision signed by `identity`, a channel
     * in `approvers` that vouches for the people whose slackUserId it knows.
     */
    slack: z
      .object({
        apiUrl: httpUrl.default('https://slack.com/api/'),
        botToken: z.string().min(1),
        signingSecret: z.string().min(1),
        channel: z.string().min(1).default('#ops-alerts'),
        identity: z.string().min(1).default('slack'),
        /** The channel identity's private key (OpenSSH format); the alert bridge signs Slack decisions with it. */
        signingKeyFile: z.string().min(1).optional(),
      })
      .optional(),
    /** Thresholds of the daily/weekly/monthly checklists; the manual's numbers are the defaults. */
    checklists: z.object({ thresholds: checklistThresholds.default(checklistThresholdDefaults) }).default({ thresholds: checklistThresholdDefaults }),
    /** When Temporal Schedules start the checklists (`npm run schedules`, and `npm start`). */
    schedules: z
      .object({
        /** An IANA time zone, e.g. Asia/Shanghai. */
        timezone: z.string().refine(isTimeZone, { message: 'expected an IANA time zone such as UTC or Asia/Shanghai' }).default('UTC'),
        daily: z.object({ enabled: z.boolean().default(true), at: timeOfDay.default('08:00') }).default({ enabled: true, at: '08:00' }),
        weekly: z.object({ enabled: z.boolean().default(true), day: weekday.default('monday'), at: timeOfDay.default('09:00') }).default({ enabled: true, day: 'monday', at: '09:00' }),
        monthly: monthlySchedule({ enabled: true, dayOfMonth: 1, at: '10:00' }),
        /**
         * databaseOptimization (性能优化 → 数据库优化) once a month: off by default. Its ⚠ steps still
         * wait for a person's approval (no policy approves them).
         */
        databaseOptimization: monthlySchedule({ enabled: false, dayOfMonth: 15, at: '03:00' }),
        /** How late a missed run may still start (e.g. after the server was down); later ones are skipped. */
        catchupWindow: duration.default('1h'),
      })
      .default({
        timezone: 'UTC',
        daily: { enabled: true, at: '08:00' },
        weekly: { enabled: true, day: 'monday', at: '09:00' },
        monthly: { enabled: true, dayOfMonth: 1, at: '10:00' },
        databaseOptimization: { enabled: false, dayOfMonth: 15, at: '03:00' },
        catchupWindow: '1h',
      }),
    /** The Alertmanager bridge (`npm run alert-bridge`): listen address, token, routes; see config/alerting.ts. */
    alerting: alertingSchema,
    /** OpenTelemetry tracing (config/tracing.ts): off unless an OTLP/HTTP endpoint is set. */
    tracing: z.object({ otlpEndpoint: httpUrl.optional() }).default({}),
    worker: z
      .object({
        metricsHost: z.string().min(1).default('0.0.0.0'),
        metricsPort: port.default(9464),
        logLevel: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
        shutdownGraceSeconds: z.coerce.number().positive().default(30),
        /** host:port of /readyz and /livez for Kubernetes probes (workers/health-server.ts); none when unset. */
        healthListen: hostPort.optional(),
        /**
         * A workflow bundle built ahead of time (workers/bundle-workflows.ts; the image has one), instead
         * of webpack at every start: faster, and no compiler where the root file system is read-only.
         */
        workflowBundle: z.string().min(1).optional(),
        /**
         * Worker Versioning (workers/worker-versioning.ts), opt-in: with a deployment name the worker
         * polls as version `deploymentName`.`buildId` of that Worker Deployment, so a run finishes on
         * the code it started with. The image carries its build id; without a name it stays unversioned.
         */
        deploymentName: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,100}$/, { message: 'expected a Worker Deployment name of letters, digits, dash or underscore (no dot: Temporal writes versions as name.buildId)' })
          .optional(),
        buildId: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, { message: 'expected a build id such as the image tag (letters, digits, dot, dash, underscore; at most 128)' })
          .optional(),
      })
      .refine((worker) => !worker.deploymentName || worker.buildId, { message: 'a versioned worker needs its build id (env WORKER_BUILD_ID, e.g. the image tag)', path: ['buildId'] })
      .default({ metricsHost: '0.0.0.0', metricsPort: 9464, logLevel: 'INFO', shutdownGraceSeconds: 30 }),
  })
  .superRefine((config, ctx) => {
    // monthlyReview lists the backups beyond retention with the same rules a deletion follows.
    const minAgeDays = config.s3?.backupMinAgeDays;
    if (minAgeDays !== undefined && config.checklists.thresholds.backupRetentionDays < minAgeDays) {
      ctx.addIssue({ code: 'custom', path: ['checklists', 'thresholds', 'backupRetentionDays'], message: `below s3.backupMinAgeDays (${minAgeDays}): backups younger than that are never deleted` });
    }
  });

export type RunbookConfig = z.infer<typeof configSchema>;
export type Identity = RunbookConfig['approvers'][number];

/** Whether decisions must be signed: the setting, else on as soon as anyone has a key. */
export function approvalsVerified(config: Pick<RunbookConfig, 'approvers' | 'approvals'>): boolean {
  return config.approvals.requireSignatures ?? config.approvers.some((a) => a.publicKey !== undefined);
}
export type AllowLists = RunbookConfig['allowlists'];
