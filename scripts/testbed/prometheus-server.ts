import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { prometheusGet } from '../../activities/prometheus';
import { testbedAlertRulesFile, writeTestbedAlertRules } from './alert-rules';
import { backfillCapacityHistory, capacityScrapeJobs, capacitySelector } from './capacity-history';
import { ensureDebianPackages } from './install';
import { port } from './layout';
import { capacityMetricsTarget, podDiscoveryUrl } from './node-servers';
import { realNodeWanted } from './node/node-names';
import { replaceFileIfChanged, startDetached, waitUntil } from './processes';
import type { TestbedContext, TestbedServer } from './context';

export function prometheusUrl(ctx: TestbedContext): string {
  return `http://127.0.0.1:${port(ctx.layout, 'prometheus')}`;
}

async function instantQuery(ctx: TestbedContext, query: string): Promise<unknown[]> {
  return (await prometheusGet<{ result: unknown[] }>(prometheusUrl(ctx), 'api/v1/query', { query }, 5000)).result;
}

async function isReady(ctx: TestbedContext): Promise<boolean> {
  const response = await fetch(`${prometheusUrl(ctx)}/-/ready`, { signal: AbortSignal.timeout(1000) });
  return response.ok;
}

/** The group of deploy/prometheus/runbook-alerts.yml is loaded (a Prometheus from before the alert rules is not). */
async function hasAlertRules(ctx: TestbedContext): Promise<boolean> {
  const { groups } = await prometheusGet<{ groups: Array<{ name: string }> }>(prometheusUrl(ctx), 'api/v1/rules', { type: 'alert' }, 2000);
  return groups.some((g) => g.name === 'runbook-alerts');
}

function configFile(layout: TestbedContext['layout']): string {
  return join(layout.stateDir, 'prometheus', 'prometheus.yml');
}

/**
 * short-drama-app's pods, each Running pod on its `http` port, labelled with its namespace and pod:
 * what `kubernetes_sd_configs` finds in production, served by pod-discovery.js (Debian's
 * Prometheus is built without Kubernetes service discovery). Only with the real node: kwok's pods
 * run nothing.
 */
function appScrapeJob(layout: TestbedContext['layout']): string[] {
  if (!realNodeWanted()) return [];
  return ['  - job_name: short-drama-app', '    http_sd_configs:', `      - url: '${podDiscoveryUrl(layout)}'`, '        refresh_interval: 2s'];
}

/** Writes Prometheus' configuration; true when it changed. */
function writeConfig(layout: TestbedContext['layout']): boolean {
  const capacity = capacityMetricsTarget(layout);
  const text = [
    'global:',
    '  scrape_interval: 2s',
    '  evaluation_interval: 2s',
    // The manual's alert rules (deploy/prometheus/, shortened for the test bed), to the test bed's Alertmanager.
    'rule_files:',
    `  - '${testbedAlertRulesFile(layout)}'`,
    'alerting:',
    '  alertmanagers:',
    '    - static_configs:',
    `        - targets: ['127.0.0.1:${port(layout, 'alertmanager')}']`,
    'scrape_configs:',
    '  - job_name: prometheus',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${port(layout, 'prometheus')}']`,
    '  - job_name: temporal',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${port(layout, 'temporalMetrics')}']`,
    // The runbook worker's metrics (the SDK's and runbook_*), for deploy/grafana's dashboard.
    '  - job_name: runbook-worker',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${port(layout, 'workerMetrics')}', '127.0.0.1:${port(layout, 'testWorkerMetrics')}']`,
    ...appScrapeJob(layout),
    ...capacityScrapeJobs().flatMap(({ job, metricsPath }) => [`  - job_name: ${job}`, `    metrics_path: ${metricsPath}`, '    static_configs:', `      - targets: ['${capacity}']`]),
    '',
  ].join('\n');
  return replaceFileIfChanged(configFile(layout), text);
}

/**
 * Prometheus scraping itself, the Temporal dev server, the runbook worker (`npm start`'s and a
 * test's), short-drama-app's pods (with the real node)
 * and the capacity series under the scrape jobs `kubelet` and `postgres-exporter`, started on 30
 * days of backfilled capacity history (capacity-history.ts) for the monthly review.
 */
export const prometheusServer: TestbedServer = {
  name: 'prometheus',
  ports: ['prometheus'],
  install(ctx) {
    // The package ships promtool too, which backfills the history.
    ensureDebianPackages(['prometheus'], ctx.log);
  },
  async isHealthy(ctx) {
    // A Prometheus started before the history existed (or whose history is gone) is not the one
    // the tests need: `up` then restarts it, which backfills. 29 days back is inside the history
    // right after a start and stays so while Prometheus runs. (One that is not ready fails the query.)
    const [history, alertRules] = await Promise.all([instantQuery(ctx, `${capacitySelector('databaseSize')} offset 29d`), hasAlertRules(ctx)]);
    return history.length > 0 && alertRules;
  },
  async start(ctx) {
    const { layout } = ctx;
    const dir = join(layout.stateDir, 'prometheus');
    const dataDir = join(dir, 'data');
    // The history ends at this start: blocks of an earlier one would overlap it, and the live
    // scrapes must come after the last backfilled sample.
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true });
    const t0 = Date.now();
    const history = backfillCapacityHistory(layout, dataDir, capacityMetricsTarget(layout));
    ctx.log(`prometheus: ${Math.round((history.endMs - history.originMs) / 86_400_000)} days of capacity history backfilled in ${Date.now() - t0} ms`);
    writeTestbedAlertRules(layout);
    writeConfig(layout);
    startDetached(layout.stateDir, 'prometheus', 'prometheus', [
      `--config.file=${configFile(layout)}`,
      `--storage.tsdb.path=${dataDir}`,
      // The default 15d would delete most of the 30-day history at once.
      '--storage.tsdb.retention.time=90d',
      `--web.listen-address=127.0.0.1:${port(layout, 'prometheus')}`,
      '--web.enable-lifecycle',
      '--web.enable-admin-api',
    ]);
    await waitUntil('Prometheus', () => isReady(ctx), 60_000, join(layout.stateDir, 'prometheus.log'));
    // Ready means PromQL already has data: wait for the first scrape of itself.
    await waitUntil('the first Prometheus scrape', async () => (await instantQuery(ctx, 'up')).length > 0, 30_000);
  },
  // Edits of the shipped rules (or of the scrape configuration) reach a running Prometheus by a reload.
  async seed(ctx) {
    const rulesChanged = writeTestbedAlertRules(ctx.layout);
    const configChanged = writeConfig(ctx.layout);
    if (!rulesChanged && !configChanged) return;
    const reload = await fetch(`${prometheusUrl(ctx)}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
    if (!reload.ok) throw new Error(`prometheus: reloading its configuration failed: ${(await reload.text()).trim()}`);
    ctx.log(`prometheus: ${[rulesChanged && 'alert rules', configChanged && 'scrape configuration'].filter(Boolean).join(' and ')} reloaded`);
  },
  // Lets `up` replace one of ours without the history (see isHealthy) instead of failing on its port.
};
