import { z } from 'zod';
import { catalog, type CatalogEntry } from '../common/catalog';
import { alertInitiator } from '../common/alert-initiator';
import { modes, severities } from '../common/runbook';

/**
 * The `alerting` section: where the Alertmanager bridge (client/alert-bridge.ts) listens, its
 * optional bearer token, and which runbook each alert starts. The default routes are the table
 * "Alerts (告警规则) → runbooks" of ../shared/runbook-catalog.md, for the alert names of
 * deploy/prometheus/runbook-alerts.yml.
 */

/** Set by the route itself or by the bridge (language: RUNBOOK_LANGUAGE), never by a label or a fixed input. */
const routeOwnedFields = ['mode', 'severity', 'startedBy', 'scheduled', 'startProof', 'language'];

const labelName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'expected a Prometheus label name' });

const listen = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+):\d{1,5}$/, { message: 'expected host:port, e.g. 127.0.0.1:9095 (port 0: any free port)' })
  .refine((text) => Number(text.slice(text.lastIndexOf(':') + 1)) <= 65535, { message: 'expected a port number 0-65535' });

/** The runbook's input fields, when its schema is an object (every catalog entry's is). */
export function inputFieldsOf(entry: CatalogEntry): string[] {
  return entry.inputSchema instanceof z.ZodObject ? Object.keys(entry.inputSchema.shape) : [];
}

/** Labels read when a route names none: namespace and deployment, where the runbook has such inputs. */
export function defaultInputFromLabels(entry: CatalogEntry): Record<string, string> {
  const fields = inputFieldsOf(entry);
  return Object.fromEntries(['namespace', 'deployment'].filter((field) => fields.includes(field)).map((field) => [field, field]));
}

const alertRoute = z
  .object({
    /** The alert's `alertname` label. */
    alertname: z.string().min(1, { message: 'expected an alert name' }),
    /** Further labels that must be equal (e.g. { deployment: redis }); the first matching route wins. */
    match: z.record(labelName, z.string()).default({}),
    runbook: z.string().min(1, { message: 'expected a runbook of the catalog' }),
    severity: z.enum(severities, { message: 'expected one of P0, P1, P2, P3' }),
    mode: z.enum(modes, { message: 'expected "plan" or "execute"' }).default('plan'),
    /** Input field ← alert label; default: namespace and deployment where the runbook has them. */
    inputFromLabels: z.record(z.string().min(1), labelName).optional(),
    /** Fixed input fields; they win over labels, and the runbook's defaults fill the rest. */
    input: z.record(z.string(), z.unknown()).default({}),
  })
  .strict()
  .superRefine((route, ctx) => {
    const entry = (catalog as Record<string, CatalogEntry>)[route.runbook];
    if (!entry) {
      // The value is not echoed (configuration errors never carry values); the choices are.
      ctx.addIssue({ code: 'custom', path: ['runbook'], message: `expected a runbook of the catalog: ${Object.keys(catalog).sort().join(', ')}` });
      return;
    }
    const fields = inputFieldsOf(entry);
    for (const field of Object.keys(route.inputFromLabels ?? {})) {
      if (routeOwnedFields.includes(field)) ctx.addIssue({ code: 'custom', path: ['inputFromLabels', field], message: `${field} comes from the route, not from a label` });
      else if (!fields.includes(field))
        ctx.addIssue({ code: 'custom', path: ['inputFromLabels', field], message: `not an input of ${entry.name}; its inputs: ${fields.filter((f) => !routeOwnedFields.includes(f)).join(', ')}` });
    }
    for (const field of Object.keys(route.input)) {
      if (routeOwnedFields.includes(field)) ctx.addIssue({ code: 'custom', path: ['input', field], message: `${field} is set by the route (mode, severity) or by the bridge` });
    }
    // The fixed input must already be valid for the runbook, so a bad route stops the bridge at start, not at the first alert.
    const parsed = entry.inputSchema.safeParse({ ...route.input, mode: route.mode, severity: route.severity, startedBy: alertInitiator(route.alertname) });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        if (issue.path.length > 0 && routeOwnedFields.includes(String(issue.path[0]))) continue;
        ctx.addIssue({ code: 'custom', path: ['input', ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))], message: issue.message });
      }
    }
  });

export type AlertRoute = z.infer<typeof alertRoute>;

/** The catalog's table (runbook-catalog.md "Alerts (告警规则) → runbooks"); every run in plan mode. */
export const defaultAlertRoutes: AlertRoute[] = [
  // 服务不可用: all pods unhealthy.
  { alertname: 'ServiceUnavailable', match: {}, runbook: 'podCrashLoop', severity: 'P0', mode: 'plan', input: {} },
  // API错误率过高 > 10 %: diagnosis; a crash after a new rollout offers the rollback.
  { alertname: 'ApiErrorRateHigh', match: {}, runbook: 'podCrashLoop', severity: 'P1', mode: 'plan', input: {} },
  // 数据库连接失败 (connections = 0): the app's metric, so only its namespace says which database deployment (default postgres).
  { alertname: 'DatabaseConnectionsZero', match: {}, runbook: 'dbConnectionExhaustion', severity: 'P0', mode: 'plan', inputFromLabels: { namespace: 'namespace' }, input: {} },
  // API响应时间慢 P95 > 5 s: the daily checklist's subset the catalog names (resource usage + slow queries).
  {
    alertname: 'ApiLatencyHigh',
    match: {},
    runbook: 'dailyHealthCheck',
    severity: 'P2',
    mode: 'plan',
    inputFromLabels: { namespace: 'namespace', appDeployment: 'deployment' },
    input: { only: ['usage', 'slow-statements'] },
  },
  // 磁盘空间不足 > 80 %: the volume by its claim.
  { alertname: 'DiskUsageHigh', match: {}, runbook: 'diskPressure', severity: 'P2', mode: 'plan', inputFromLabels: { namespace: 'namespace', pvc: 'persistentvolumeclaim' }, input: {} },
  // 内存使用率高 > 85 %: Redis has its own runbook; the app takes the OOM path of podCrashLoop.
  {
    alertname: 'MemoryUsageHigh',
    match: { deployment: 'redis' },
    runbook: 'redisMemoryPressure',
    severity: 'P2',
    mode: 'plan',
    inputFromLabels: { namespace: 'namespace', deployment: 'deployment', container: 'container' },
    input: {},
  },
  {
    alertname: 'MemoryUsageHigh',
    match: { deployment: 'short-drama-app' },
    runbook: 'podCrashLoop',
    severity: 'P2',
    mode: 'plan',
    inputFromLabels: { namespace: 'namespace', deployment: 'deployment', container: 'container' },
    input: {},
  },
];

export const defaultAlertingListen = '127.0.0.1:9095';

export const alertingSchema = z
  .object({
    /** host:port of the bridge's HTTP server. */
    listen: listen.default(defaultAlertingListen),
    /** Shared bearer token Alertmanager sends (http_config.authorization); none: no check. */
    token: z
      .string()
      .min(16, { message: 'expected at least 16 characters' })
      .regex(/^[\x21-\x7e]+$/, { message: 'expected printable characters without spaces' })
      .optional(),
    routes: z.array(alertRoute).default(defaultAlertRoutes),
    /** The bridge's identity in `approvers` (kind service, with its publicKey): it signs its starts as this. */
    identity: z.string().min(1).default('alert-bridge'),
    /** Its private key (OpenSSH format); none: starts go unsigned, so their steps need two approvers where signatures are required. */
    signingKeyFile: z.string().min(1).optional(),
    /**
     * How long one notification may take, in ms. Below Alertmanager's own bound on a notification
     * (at least 10 s: max(group_interval, 10 s)), so it gets an answer; alerts not reached by then
     * fail retryably (503) and come again.
     */
    deadlineMs: z.coerce.number({ message: 'expected milliseconds' }).int().min(100, { message: 'expected 100-60000 ms' }).max(60_000, { message: 'expected 100-60000 ms' }).default(8_000),
    /** How many alerts of one notification are started or signalled at once: a large group is neither serial nor a burst on Temporal. */
    concurrency: z.coerce.number({ message: 'expected a number' }).int().min(1, { message: 'expected 1-64' }).max(64, { message: 'expected 1-64' }).default(8),
  })
  .default({ listen: defaultAlertingListen, routes: defaultAlertRoutes, identity: 'alert-bridge', deadlineMs: 8_000, concurrency: 8 });

export type AlertingConfig = z.infer<typeof alertingSchema>;
