import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDebianPackages } from './install';
import { port } from './layout';
import { startDetached, waitUntil } from './processes';
import type { TestbedContext, TestbedServer } from './context';

export function prometheusUrl(ctx: TestbedContext): string {
  return `http://127.0.0.1:${port(ctx.layout, 'prometheus')}`;
}

/** Prometheus scraping itself and the Temporal dev server, so PromQL has real series to answer with. */
export const prometheusServer: TestbedServer = {
  name: 'prometheus',
  ports: ['prometheus'],
  install(ctx) {
    ensureDebianPackages(['prometheus'], ctx.log);
  },
  async isHealthy(ctx) {
    const response = await fetch(`${prometheusUrl(ctx)}/-/ready`, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  },
  async start(ctx) {
    const { layout } = ctx;
    const dir = join(layout.stateDir, 'prometheus');
    mkdirSync(join(dir, 'data'), { recursive: true });
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(
      configFile,
      [
        'global:',
        '  scrape_interval: 2s',
        '  evaluation_interval: 2s',
        'scrape_configs:',
        '  - job_name: prometheus',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${port(layout, 'prometheus')}']`,
        '  - job_name: temporal',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${port(layout, 'temporalMetrics')}']`,
        '  - job_name: short-drama-app',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${port(layout, 'appMetrics')}']`,
        '',
      ].join('\n'),
    );
    startDetached(layout.stateDir, 'prometheus', 'prometheus', [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port(layout, 'prometheus')}`,
      '--web.enable-lifecycle',
      '--web.enable-admin-api',
    ]);
    await waitUntil('Prometheus', () => this.isHealthy(ctx), 60_000, join(layout.stateDir, 'prometheus.log'));
    // Ready means PromQL already has data: wait for the first scrape of itself.
    await waitUntil('the first Prometheus scrape', async () => {
      const response = await fetch(`${prometheusUrl(ctx)}/api/v1/query?query=up`, { signal: AbortSignal.timeout(1000) });
      const body = (await response.json()) as { data?: { result?: unknown[] } };
      return (body.data?.result?.length ?? 0) > 0;
    }, 30_000);
  },
};
