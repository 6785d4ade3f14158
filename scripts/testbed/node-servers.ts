import { join } from 'node:path';
import { capacityHistoryFile } from './capacity-history';
import { port, type PortName, type TestbedLayout } from './layout';
import { startDetached, waitUntil } from './processes';
import { prodAddress } from './node/node-prod';
import { prometheusKubeconfigPath } from './kubernetes-pki';
import { kubernetesNamespace } from './kubernetes-seed';
import type { ServiceName, TestbedContext, TestbedServer } from './context';

export function webhookUrl(ctx: TestbedContext): string {
  return `http://127.0.0.1:${port(ctx.layout, 'webhook')}`;
}

/** host:port of the capacity-metrics server: Prometheus' scrape target, hence the instance label of its series. */
export function capacityMetricsTarget(layout: TestbedLayout): string {
  return `127.0.0.1:${port(layout, 'capacityMetrics')}`;
}

/** Prometheus' HTTP service discovery of short-drama-app's pods (pod-discovery.js). */
export function podDiscoveryUrl(layout: TestbedLayout): string {
  return `http://127.0.0.1:${port(layout, 'podDiscovery')}/targets`;
}

export function appTrafficUrl(ctx: TestbedContext): string {
  return `http://127.0.0.1:${port(ctx.layout, 'appTraffic')}`;
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

/** The capacity series continuing the history Prometheus was backfilled with (the monthly review's month), scraped by Prometheus. */
export const capacityMetricsServer = nodeServer('capacity-metrics', 'capacity-metrics.js', 'capacityMetrics', '/healthz', (ctx) => [capacityHistoryFile(ctx.layout)]);

/** Requests a second to short-drama-app: enough for rates over the test bed's 10 s alert windows, little for 2 cores. */
export const appTrafficRps = 3;

/** short-drama-app's users (app-traffic.js) through its NodePort: only with the real node, where the app runs. */
export const appTrafficServer = nodeServer('app-traffic', 'app-traffic.js', 'appTraffic', '/healthz', (ctx) => [
  `http://${prodAddress(ctx.layout, 'short-drama-app', 'unreachable:0')}`,
  String(appTrafficRps),
]);

/** What Kubernetes service discovery would find of short-drama-app's pods, for Debian's Prometheus, which lacks it (pod-discovery.js). */
export const podDiscoveryServer = nodeServer('pod-discovery', 'pod-discovery.js', 'podDiscovery', '/healthz', (ctx) => [
  prometheusKubeconfigPath(ctx.layout),
  kubernetesNamespace,
  'app=short-drama-app',
]);
