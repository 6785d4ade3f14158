import { join } from 'node:path';
import { capacityHistoryFile } from './capacity-history';
import { port, type PortName, type TestbedLayout } from './layout';
import { startDetached, waitUntil } from './processes';
import type { ServiceName, TestbedContext, TestbedServer } from './context';

export function webhookUrl(ctx: TestbedContext): string {
  return `http://127.0.0.1:${port(ctx.layout, 'webhook')}`;
}

/** host:port of the app-metrics server: Prometheus' scrape target, hence the instance label of its series. */
export function appMetricsTarget(layout: TestbedLayout): string {
  return `127.0.0.1:${port(layout, 'appMetrics')}`;
}

export function appMetricsUrl(ctx: TestbedContext): string {
  return `http://${appMetricsTarget(ctx.layout)}`;
}

/** A small server of ours (plain Node.js, nothing to install), started like the others. */
function nodeServer(name: ServiceName, script: string, portName: PortName, healthPath: string, extraArgs: (ctx: TestbedContext) => string[] = () => []): TestbedServer {
  const url = (ctx: TestbedContext) => `http://127.0.0.1:${port(ctx.layout, portName)}${healthPath}`;
  return {
    name,
    ports: [portName],
    install() {
      // Node.js runs it; nothing to install.
    },
    async isHealthy(ctx) {
      return (await fetch(url(ctx), { signal: AbortSignal.timeout(1000) })).ok;
    },
    async start(ctx) {
      startDetached(ctx.layout.stateDir, name, process.execPath, [join(__dirname, script), String(port(ctx.layout, portName)), ...extraArgs(ctx)]);
      await waitUntil(name, () => this.isHealthy(ctx), 30_000, join(ctx.layout.stateDir, `${name}.log`));
    },
    // Lets `up` replace an unhealthy one of ours (e.g. from an older checkout) instead of failing on its port.
  };
}

/** Receives the runbooks' notifications (Slack-compatible JSON) and lists them at GET /messages. */
export const webhookServer = nodeServer('webhook', 'webhook-receiver.js', 'webhook', '/healthz', (ctx) => [join(ctx.layout.stateDir, 'webhook-messages.jsonl')]);

/**
 * The manual's application metrics with simulated traffic, and the capacity series continuing the
 * history Prometheus was backfilled with, scraped by Prometheus. Healthy means /healthz answers,
 * which a server from before the capacity series does not: `up` replaces such a one.
 */
export const appMetricsServer = nodeServer('app-metrics', 'app-metrics.js', 'appMetrics', '/healthz', (ctx) => [capacityHistoryFile(ctx.layout)]);
