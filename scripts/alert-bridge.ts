import { Client, Connection } from '@temporalio/client';
import { startAlertBridge, jsonLineLog } from '../client/alert-bridge';
import { ConfigError, loadConfig } from '../config/load';
import { temporalTls } from '../workers/temporal-tls';
import { readEnvFile } from './testbed/env-file';
import { testbedLayout } from './testbed/layout';

/** Without TEMPORAL_ADDRESS: this checkout's sandbox, on the port and token its Alertmanager posts with. */
const sandboxVariables = ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'ALERT_BRIDGE_LISTEN', 'ALERT_BRIDGE_TOKEN'];

function configuration() {
  const env = { ...process.env };
  if (!env.TEMPORAL_ADDRESS) {
    const sandbox = readEnvFile(testbedLayout().envFile);
    if (sandbox.TEMPORAL_ADDRESS) for (const name of sandboxVariables) env[name] ??= sandbox[name];
  }
  return loadConfig({ env });
}

/** `npm run alert-bridge`: Alertmanager's webhook receiver that starts runbooks (client/alert-bridge.ts). */
async function main(): Promise<void> {
  const config = configuration();
  // Lazy: the bridge listens even while Temporal is down, answering 503 so Alertmanager retries.
  const connection = Connection.lazy({ address: config.temporal.address, tls: temporalTls(config.temporal.tls), apiKey: config.temporal.apiKey });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const bridge = await startAlertBridge({ client, taskQueue: config.temporal.taskQueue, alerting: config.alerting });
  jsonLineLog('info', 'alert bridge ready', { temporal: config.temporal.address, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, alertnames: [...new Set(config.alerting.routes.map((r) => r.alertname))] });
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
  });
  await bridge.close();
  await connection.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`alert-bridge: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
