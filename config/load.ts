import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type RunbookConfig } from './schema';

/** Each environment variable and the configuration field it sets. */
export const environmentVariables = {
  TEMPORAL_ADDRESS: 'temporal.address',
  TEMPORAL_NAMESPACE: 'temporal.namespace',
  TEMPORAL_TASK_QUEUE: 'temporal.taskQueue',
  TEMPORAL_API_KEY: 'temporal.apiKey',
  TEMPORAL_TLS: 'temporal.tls.enabled',
  TEMPORAL_TLS_SERVER_NAME: 'temporal.tls.serverName',
  TEMPORAL_TLS_CA: 'temporal.tls.caFile',
  TEMPORAL_TLS_CERT: 'temporal.tls.certFile',
  TEMPORAL_TLS_KEY: 'temporal.tls.keyFile',
  RUNBOOK_PAYLOAD_KEYS: 'temporal.payloadEncryption.keys',
  RUNBOOK_PAYLOAD_KEY_ID: 'temporal.payloadEncryption.activeKeyId',
  RUNBOOK_CODEC_LISTEN: 'temporal.payloadEncryption.codecServer.listen',
  RUNBOOK_CODEC_TOKEN: 'temporal.payloadEncryption.codecServer.token',
  RUNBOOK_CODEC_CORS_ORIGINS: 'temporal.payloadEncryption.codecServer.corsOrigins',
  KUBECONFIG: 'kubernetes.kubeconfigPath',
  KUBE_CONTEXT: 'kubernetes.context',
  KUBE_IN_CLUSTER: 'kubernetes.mode',
  KUBERNETES_AUDIT_LOG: 'kubernetes.auditLogPath',
  SEALED_SECRETS_CERT_URL: 'sealedSecrets.certUrl',
  SEALED_SECRETS_UNSEAL_TIMEOUT_SECONDS: 'sealedSecrets.unsealTimeoutSeconds',
  DATABASE_URL: 'postgres.url',
  RESTORE_DRILL_DATABASE_URL: 'postgres.restoreDrillUrl',
  REDIS_URL: 'redis.url',
  S3_ENDPOINT: 's3.endpoint',
  S3_REGION: 's3.region',
  S3_BUCKET: 's3.bucket',
  S3_ACCESS_KEY_ID: 's3.accessKeyId',
  S3_SECRET_ACCESS_KEY: 's3.secretAccessKey',
  S3_FORCE_PATH_STYLE: 's3.forcePathStyle',
  S3_BACKUP_PREFIX: 's3.backupPrefix',
  S3_EVIDENCE_PREFIX: 's3.evidencePrefix',
  S3_BACKUP_KEEP_NEWEST: 's3.backupKeepNewest',
  S3_BACKUP_MIN_AGE_DAYS: 's3.backupMinAgeDays',
  PROMETHEUS_URL: 'prometheus.url',
  ALLOWED_NAMESPACES: 'allowlists.namespaces',
  ALLOWED_DATABASES: 'allowlists.databases',
  ALLOWED_ROTATION_ROLES: 'allowlists.rotationRoles',
  ALLOWED_REDIS_KEY_PATTERNS: 'allowlists.redisKeyPatterns',
  ALLOWED_S3_PREFIXES: 'allowlists.s3Prefixes',
  RUNBOOK_APPROVERS: 'approvers',
  NOTIFY_WEBHOOK_URL: 'notifications.webhookUrl',
  RUNBOOK_LANGUAGE: 'language',
  SLACK_API_URL: 'slack.apiUrl',
  SLACK_BOT_TOKEN: 'slack.botToken',
  SLACK_SIGNING_SECRET: 'slack.signingSecret',
  SLACK_CHANNEL: 'slack.channel',
  SLACK_IDENTITY: 'slack.identity',
  SLACK_SIGNING_KEY: 'slack.signingKeyFile',
  CHECKLIST_THRESHOLDS: 'checklists.thresholds',
  SCHEDULE_TIMEZONE: 'schedules.timezone',
  SCHEDULE_DAILY_ENABLED: 'schedules.daily.enabled',
  SCHEDULE_DAILY_AT: 'schedules.daily.at',
  SCHEDULE_WEEKLY_ENABLED: 'schedules.weekly.enabled',
  SCHEDULE_WEEKLY_DAY: 'schedules.weekly.day',
  SCHEDULE_WEEKLY_AT: 'schedules.weekly.at',
  SCHEDULE_MONTHLY_ENABLED: 'schedules.monthly.enabled',
  SCHEDULE_MONTHLY_DAY: 'schedules.monthly.dayOfMonth',
  SCHEDULE_MONTHLY_AT: 'schedules.monthly.at',
  SCHEDULE_DATABASE_OPTIMIZATION_ENABLED: 'schedules.databaseOptimization.enabled',
  SCHEDULE_DATABASE_OPTIMIZATION_DAY: 'schedules.databaseOptimization.dayOfMonth',
  SCHEDULE_DATABASE_OPTIMIZATION_AT: 'schedules.databaseOptimization.at',
  SCHEDULE_CATCHUP_WINDOW: 'schedules.catchupWindow',
  ESCALATION_P0: 'approvals.escalation.P0',
  ESCALATION_P1: 'approvals.escalation.P1',
  ESCALATION_P2: 'approvals.escalation.P2',
  ESCALATION_P3: 'approvals.escalation.P3',
  APPROVAL_POLICIES: 'approvals.policies',
  APPROVALS_REQUIRE_SIGNATURES: 'approvals.requireSignatures',
  APPROVAL_STATEMENT_LIFETIME: 'approvals.statementLifetime',
  APPROVAL_QUORUM: 'approvals.quorum',
  WORKER_METRICS_HOST: 'worker.metricsHost',
  WORKER_METRICS_PORT: 'worker.metricsPort',
  LOG_LEVEL: 'worker.logLevel',
  WORKER_SHUTDOWN_GRACE_SECONDS: 'worker.shutdownGraceSeconds',
  WORKER_HEALTH_LISTEN: 'worker.healthListen',
  WORKFLOW_BUNDLE: 'worker.workflowBundle',
  WORKER_DEPLOYMENT_NAME: 'worker.deploymentName',
  WORKER_BUILD_ID: 'worker.buildId',
  ALERT_BRIDGE_LISTEN: 'alerting.listen',
  ALERT_BRIDGE_TOKEN: 'alerting.token',
  ALERT_ROUTES: 'alerting.routes',
  ALERT_BRIDGE_IDENTITY: 'alerting.identity',
  ALERT_BRIDGE_SIGNING_KEY: 'alerting.signingKeyFile',
  ALERT_BRIDGE_DEADLINE_MS: 'alerting.deadlineMs',
  ALERT_BRIDGE_CONCURRENCY: 'alerting.concurrency',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'tracing.otlpEndpoint',
} as const;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Tree = Record<string, unknown>;

function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = tree;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
    node = node[part] as Tree;
  }
  node[parts[parts.length - 1]!] = value;
}

const booleanText: Record<string, boolean> = { true: true, '1': true, yes: true, false: false, '0': false, no: false };

/** Turns one variable's text into the field's value; a value that cannot be read stays text so the schema names it. */
function fromEnvText(variable: keyof typeof environmentVariables, text: string): unknown {
  switch (variable) {
    case 'TEMPORAL_TLS':
    case 'S3_FORCE_PATH_STYLE':
    case 'SCHEDULE_DAILY_ENABLED':
    case 'SCHEDULE_WEEKLY_ENABLED':
    case 'SCHEDULE_MONTHLY_ENABLED':
    case 'SCHEDULE_DATABASE_OPTIMIZATION_ENABLED':
    case 'APPROVALS_REQUIRE_SIGNATURES':
      return booleanText[text.toLowerCase()] ?? text;
    case 'KUBE_IN_CLUSTER':
      return booleanText[text.toLowerCase()] === true ? 'in-cluster' : undefined;
    case 'ALLOWED_NAMESPACES':
    case 'ALLOWED_DATABASES':
    case 'ALLOWED_ROTATION_ROLES':
    case 'ALLOWED_REDIS_KEY_PATTERNS':
    case 'ALLOWED_S3_PREFIXES':
    case 'RUNBOOK_CODEC_CORS_ORIGINS':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter(Boolean);
    case 'RUNBOOK_APPROVERS':
    case 'RUNBOOK_PAYLOAD_KEYS':
    case 'APPROVAL_POLICIES':
    case 'APPROVAL_QUORUM':
    case 'CHECKLIST_THRESHOLDS':
    case 'ALERT_ROUTES':
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    default:
      return text;
  }
}

/** Which environment variable (if any) feeds a field, for error messages. */
function variableFor(path: string): string | undefined {
  return Object.entries(environmentVariables).find(([, field]) => path === field || path.startsWith(`${field}.`))?.[0];
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  const variable = variableFor(path);
  const where = `${path || '(root)'}${variable ? ` (env ${variable})` : ''}`;
  const message = issue.code === 'invalid_type' && issue.message.includes('received undefined') ? 'is required' : issue.message;
  return `${where}: ${message}`;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** YAML file; defaults to $RUNBOOK_CONFIG. Environment variables override its values. */
  file?: string;
}

/** The configuration as given (YAML file, then environment on top), before validation. */
export function readConfigSources(options: LoadOptions = {}): Tree {
  const env = options.env ?? process.env;
  const file = options.file ?? env.RUNBOOK_CONFIG;
  let tree: Tree = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`RUNBOOK_CONFIG: cannot read ${file}: ${(err as Error).message}`]);
    }
    try {
      tree = (parseYaml(text) as Tree | null) ?? {};
    } catch (err) {
      throw new ConfigError([`RUNBOOK_CONFIG: ${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
    }
  }
  for (const [variable, field] of Object.entries(environmentVariables) as Array<[keyof typeof environmentVariables, string]>) {
    const text = env[variable];
    if (text === undefined || text === '') continue;
    const value = fromEnvText(variable, text);
    if (value !== undefined) setPath(tree, field, value);
  }
  // So a missing address is reported as temporal.address, not as a missing section.
  if (typeof tree.temporal !== 'object' || tree.temporal === null) tree.temporal = {};
  const kube = tree.kubernetes as Tree | undefined;
  if (kube && kube.mode === undefined && kube.kubeconfigPath !== undefined) kube.mode = 'kubeconfig';
  if (kube && kube.mode === undefined) {
    const set = Object.keys(kube).map((key) => `kubernetes.${key}`);
    throw new ConfigError([`${set.join(', ')} set without a Kubernetes connection: set KUBECONFIG (kubernetes.kubeconfigPath) or KUBE_IN_CLUSTER=true`]);
  }
  return tree;
}

/**
 * The one typed configuration of the worker, CLI and scripts. Values never appear in errors
 * (they may be secrets); the field, its variable and what was expected do.
 */
export function loadConfig(options: LoadOptions = {}): RunbookConfig {
  const result = configSchema.safeParse(readConfigSources(options));
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue));
  return result.data;
}

/** True when any target system is configured; with none, `npm start` runs the local sandbox. */
export function hasTargets(config: Pick<RunbookConfig, TargetSection> | Tree): boolean {
  return targetSections.some((section) => Boolean((config as Tree)[section]));
}

export const targetSections = ['kubernetes', 'postgres', 'redis', 's3', 'prometheus'] as const;
type TargetSection = (typeof targetSections)[number];
