import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { environmentVariables, hasTargets, loadConfig } from '../config/load';
import { repoRoot } from './helpers/process-output';

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  depends_on?: Record<string, unknown> | string[];
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
      'TEMPORAL_API_KEY', 'TEMPORAL_TLS', 'TEMPORAL_TLS_SERVER_NAME', 'TEMPORAL_TLS_CA', 'TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_KEY',
      'KUBE_CONTEXT', 'KUBE_IN_CLUSTER', 'S3_BACKUP_PREFIX', 'S3_EVIDENCE_PREFIX', 'RUNBOOK_APPROVERS', 'NOTIFY_WEBHOOK_URL',
      'WORKER_METRICS_HOST', 'WORKER_SHUTDOWN_GRACE_SECONDS',
      'ESCALATION_P0', 'ESCALATION_P1', 'ESCALATION_P2', 'ESCALATION_P3', 'APPROVAL_POLICIES', 'CHECKLIST_THRESHOLDS',
      'SCHEDULE_TIMEZONE', 'SCHEDULE_DAILY_AT', 'SCHEDULE_WEEKLY_DAY', 'SCHEDULE_WEEKLY_AT', 'SCHEDULE_MONTHLY_DAY', 'SCHEDULE_MONTHLY_AT', 'SCHEDULE_CATCHUP_WINDOW',
      // The alert bridge's (npm run alert-bridge); the worker does not use them.
      'ALERT_BRIDGE_LISTEN', 'ALERT_BRIDGE_TOKEN', 'ALERT_ROUTES',
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
