import { startAlertBridge, jsonLineLog } from '../client/alert-bridge';
import { WebClient } from '@slack/web-api';
import type { Client } from '@temporalio/client';
import { createRunbookClient } from '../client/runbook-client';
import { keyFileSigner } from '../client/signing';
import { createSlackInteractivity } from '../client/slack-approvals';
import type { RunbookConfig } from '../config/schema';
import { ConfigError } from '../config/load';
import { connectClient } from '../config/temporal-connection';
import { loadConfigWithSandbox } from '../config/sandbox';
import { startTracing } from '../config/tracing';

/** Without TEMPORAL_ADDRESS: this checkout's sandbox, on the port and token its Alertmanager posts with (variables set in the environment stay). */
const sandboxVariables = ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'ALERT_BRIDGE_LISTEN', 'ALERT_BRIDGE_TOKEN', 'ALERT_BRIDGE_SIGNING_KEY', 'RUNBOOK_APPROVERS'];

/** Slack approvals at /slack/interactivity when Slack is configured with the channel's key. */
function slackEndpoint(config: RunbookConfig, client: Client) {
  const slack = config.slack;
  if (!slack) return undefined;
  if (!slack.signingKeyFile) {
    jsonLineLog('warn', 'Slack is configured without SLACK_SIGNING_KEY: approvals from Slack are off (the endpoint could not sign them)', {});
    return undefined;
  }
  const runbooks = createRunbookClient({ client, taskQueue: config.temporal.taskQueue, signer: keyFileSigner(slack.signingKeyFile), language: config.language });
  const web = new WebClient(slack.botToken, { slackApiUrl: slack.apiUrl });
  return createSlackInteractivity({ runbooks, web, slack, approvers: config.approvers, log: jsonLineLog });
}

/** `npm run alert-bridge`: Alertmanager's webhook receiver that starts runbooks (client/alert-bridge.ts). */
async function main(): Promise<void> {
  const config = loadConfigWithSandbox(sandboxVariables, { onlyUnset: true });
  // Before the client is made, so its starts carry the request's span.
  const tracing = startTracing(config.tracing, 'runbook-alert-bridge');
  // Lazy: the bridge listens even while Temporal is down, answering 503 so Alertmanager retries.
  const temporal = await connectClient(config.temporal, { lazy: true });
  const signer = config.alerting.signingKeyFile ? keyFileSigner(config.alerting.signingKeyFile) : undefined;
  if (!signer) jsonLineLog('warn', 'no ALERT_BRIDGE_SIGNING_KEY: starts are unsigned, so where signatures are required their steps need two approvers', {});
  const bridge = await startAlertBridge({
    client: temporal.client,
    taskQueue: config.temporal.taskQueue,
    alerting: config.alerting,
    signer,
    language: config.language,
    slackInteractivity: slackEndpoint(config, temporal.client),
  });
  jsonLineLog('info', 'alert bridge ready', {
    temporal: config.temporal.address,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    alertnames: [...new Set(config.alerting.routes.map((r) => r.alertname))],
    deadlineMs: config.alerting.deadlineMs,
    concurrency: config.alerting.concurrency,
  });
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
  });
  await bridge.close();
  await temporal.close();
  await tracing?.shutdown();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`alert-bridge: ${err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
