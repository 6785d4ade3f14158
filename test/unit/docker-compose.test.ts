import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import { environmentVariables, hasTargets, loadConfig } from '../../config/load';
import { repoRoot } from '../helpers/process-output';

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, unknown> | string[];
}

/** Every repo file an entry point loads (relative imports, followed) and every package it names. */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [resolve(repoRoot, entry)];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    // Type-only imports vanish at run time; everything else must be in the image.
    for (const [, typeOnly, spec] of source.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gm)) {
      if (typeOnly) continue;
      if (spec!.startsWith('.')) {
        const base = resolve(dirname(file), spec!);
        const found = [`${base}.ts`, join(base, 'index.ts'), base].find((candidate) => /\.(?:ts|js|json)$/.test(candidate) && existsSync(candidate));
        if (!found) throw new Error(`cannot resolve '${spec}' imported by ${relative(repoRoot, file)}`);
        pending.push(found);
      } else if (!spec!.startsWith('node:')) {
        packages.add(spec!.startsWith('@') ? spec!.split('/').slice(0, 2).join('/') : spec!.split('/')[0]!);
      }
    }
  }
  return { files: new Set([...files].map((f) => relative(repoRoot, f))), packages };
}

/** Compose's ${VAR:-default} substitution, with no variables set (what a first `docker compose up` sees). */
function substituteDefaults(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_m, _name: string, fallback?: string) => fallback ?? '');
}

/** Docker does not run on our machines, so the compose file is checked against the worker's configuration. */
describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')) as { services: Record<string, ComposeService> };
  const services = compose.services;
  const worker = services.worker!;
  const workerEnv = Object.fromEntries(Object.entries(worker.environment ?? {}).map(([k, v]) => [k, substituteDefaults(String(v))]));

  test('has Temporal on PostgreSQL, its UI, the manual systems and the worker built from the Dockerfile', () => {
    expect(services.temporal?.environment?.DB).toBe('postgres12');
    expect(services['temporal-ui']).toBeDefined();
    for (const name of ['postgres', 'redis', 's3', 'prometheus']) expect(services[name]).toBeDefined();
    expect(worker.build).toBe('.');
    expect(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8')).toMatch(/CMD \["node", "--import", "tsx", "workers\/main\.ts"\]/);
  });

  test('the image holds every file its entry points load, and their packages are production dependencies', () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    // Every source of each COPY line (all words but the destination).
    const copied = [...dockerfile.matchAll(/^COPY (.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/).slice(0, -1));
    expect(copied.filter((c) => c === 'scripts' || c.startsWith('scripts/testbed'))).toEqual([]);
    const { dependencies } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const entries = Object.values(services)
      .filter((service) => service.build === '.')
      .map((service) => (service.command ?? ['node', '--import', 'tsx', 'workers/main.ts']).at(-1)!);
    expect(entries.sort()).toEqual(['scripts/alert-bridge.ts', 'scripts/schedules.ts', 'workers/main.ts']);
    for (const entry of entries) {
      const { files, packages } = importGraph(entry);
      const missing = [...files].filter((file) => !copied.some((c) => file === c || file.startsWith(`${c}/`)));
      expect({ entry, missing }).toEqual({ entry, missing: [] });
      const devOnly = [...packages].filter((name) => !(name in dependencies));
      expect({ entry, devOnly }).toEqual({ entry, devOnly: [] });
    }
  });

  test('Prometheus loads the alert rules and sends to Alertmanager, which posts to the alert bridge with its token', () => {
    const configs = (parse(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')) as { configs: Record<string, { content: string }> }).configs;
    const prometheus = parse(configs['prometheus-config']!.content) as { rule_files: string[]; alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> } };
    expect(prometheus.rule_files).toEqual(['/etc/prometheus/runbook-alerts.yml']);
    expect(services.prometheus!).toMatchObject({ volumes: ['./deploy/prometheus/runbook-alerts.yml:/etc/prometheus/runbook-alerts.yml:ro'] });
    expect(existsSync(join(repoRoot, 'deploy/prometheus/runbook-alerts.yml'))).toBe(true);
    expect(prometheus.alerting.alertmanagers[0]!.static_configs[0]!.targets).toEqual(['alertmanager:9093']);

    const alertmanager = parse(substituteDefaults(configs['alertmanager-config']!.content)) as {
      receivers: Array<{ webhook_configs: Array<{ url: string; http_config: { authorization: { credentials: string } } }> }>;
    };
    const webhook = alertmanager.receivers[0]!.webhook_configs[0]!;
    const bridgeEnv = Object.fromEntries(Object.entries(services['alert-bridge']!.environment ?? {}).map(([k, v]) => [k, substituteDefaults(String(v))]));
    const bridge = loadConfig({ env: bridgeEnv });
    expect(new URL(webhook.url).port).toBe(bridge.alerting.listen!.split(':').at(-1));
    expect(new URL(webhook.url).hostname).toBe('alert-bridge');
    expect(webhook.http_config.authorization.credentials).toBe(bridge.alerting.token);
    expect(bridge.temporal.taskQueue).toBe(loadConfig({ env: workerEnv }).temporal.taskQueue);
  });

  test("the worker's environment is a valid configuration with every target set", () => {
    const config = loadConfig({ env: workerEnv });
    expect(hasTargets(config)).toBe(true);
    expect(config.postgres?.url).toMatch(/@postgres:5432\/short_drama_prod$/);
    expect(config.redis?.url).toMatch(/@redis:6379\/0$/);
    expect(config.s3).toMatchObject({ endpoint: 'http://s3:8333', bucket: 'runbook-backups', forcePathStyle: true });
    expect(config.prometheus?.url).toBe('http://prometheus:9090');
    expect(config.temporal.address).toBe('temporal:7233');
  });

  test('every variable the worker reads is either set for it or has a default', () => {
    const optional = new Set([
      'TEMPORAL_API_KEY',
      'TEMPORAL_TLS',
      'TEMPORAL_TLS_SERVER_NAME',
      'TEMPORAL_TLS_CA',
      'TEMPORAL_TLS_CERT',
      'TEMPORAL_TLS_KEY',
      'KUBE_CONTEXT',
      'KUBE_IN_CLUSTER',
      // The apiserver's audit log is on the control plane's disk, not the compose worker's.
      'KUBERNETES_AUDIT_LOG',
      'S3_BACKUP_PREFIX',
      'S3_EVIDENCE_PREFIX',
      'S3_BACKUP_KEEP_NEWEST',
      'S3_BACKUP_MIN_AGE_DAYS',
      'RUNBOOK_APPROVERS',
      'NOTIFY_WEBHOOK_URL',
      'WORKER_METRICS_HOST',
      'WORKER_SHUTDOWN_GRACE_SECONDS',
      'ESCALATION_P0',
      'ESCALATION_P1',
      'ESCALATION_P2',
      'ESCALATION_P3',
      'APPROVAL_POLICIES',
      'CHECKLIST_THRESHOLDS',
      'APPROVALS_REQUIRE_SIGNATURES',
      'APPROVAL_STATEMENT_LIFETIME',
      'APPROVAL_QUORUM',
      // Slack approvals are opt-in (README "Approvals").
      'SLACK_API_URL',
      'SLACK_BOT_TOKEN',
      'SLACK_SIGNING_SECRET',
      'SLACK_CHANNEL',
      'SLACK_IDENTITY',
      'SLACK_SIGNING_KEY',
      'SCHEDULE_TIMEZONE',
      'SCHEDULE_DAILY_ENABLED',
      'SCHEDULE_WEEKLY_ENABLED',
      'SCHEDULE_MONTHLY_ENABLED',
      'SCHEDULE_DAILY_AT',
      'SCHEDULE_WEEKLY_DAY',
      'SCHEDULE_WEEKLY_AT',
      'SCHEDULE_MONTHLY_DAY',
      'SCHEDULE_MONTHLY_AT',
      'SCHEDULE_DATABASE_OPTIMIZATION_ENABLED',
      'SCHEDULE_DATABASE_OPTIMIZATION_DAY',
      'SCHEDULE_DATABASE_OPTIMIZATION_AT',
      'SCHEDULE_CATCHUP_WINDOW',
      // The alert bridge's (npm run alert-bridge); the worker does not use them.
      'ALERT_BRIDGE_LISTEN',
      'ALERT_BRIDGE_TOKEN',
      'ALERT_ROUTES',
      'ALERT_BRIDGE_IDENTITY',
      'ALERT_BRIDGE_SIGNING_KEY',
      'ALERT_BRIDGE_DEADLINE_MS',
      'ALERT_BRIDGE_CONCURRENCY',
      // The clients' (CLI, alert bridge, schedules): the language they fix in the runs they start; English by default.
      'RUNBOOK_LANGUAGE',
      // Payload encryption is off unless keys are configured (README "Payload encryption").
      'RUNBOOK_PAYLOAD_KEYS',
      'RUNBOOK_PAYLOAD_KEY_ID',
      'RUNBOOK_CODEC_LISTEN',
      'RUNBOOK_CODEC_TOKEN',
      'RUNBOOK_CODEC_CORS_ORIGINS',
      // The image's own ENV (Dockerfile): its workflow bundle, built with it.
      'WORKFLOW_BUNDLE',
      // Worker Versioning is opt-in (README "Safe upgrades"): the compose worker stays unversioned.
      'WORKER_DEPLOYMENT_NAME',
      'WORKER_BUILD_ID',
      // 使用Sealed Secrets: the compose stack runs no sealed-secrets controller (a sealed Secret is refused without the URL); the timeout has a default.
      'SEALED_SECRETS_CERT_URL',
      'SEALED_SECRETS_UNSEAL_TIMEOUT_SECONDS',
      // Tracing is off unless an OTLP endpoint is configured.
      'OTEL_EXPORTER_OTLP_ENDPOINT',
    ]);
    const unset = Object.keys(environmentVariables).filter((name) => !(name in workerEnv) && !optional.has(name));
    expect(unset).toEqual([]);
  });

  test('each host the worker connects to is a service it depends on', () => {
    const dependsOn = Array.isArray(worker.depends_on) ? worker.depends_on : Object.keys(worker.depends_on ?? {});
    const hosts = ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT', 'PROMETHEUS_URL'].map((name) => {
      const value = workerEnv[name]!;
      return value.includes('://') ? new URL(value).hostname : value.split(':')[0]!;
    });
    for (const host of hosts) {
      expect(services[host]).toBeDefined();
      expect(dependsOn).toContain(host);
    }
  });
});
