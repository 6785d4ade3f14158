import { deleteSchedules, ensureSchedules, scheduleReportLines } from '../client/schedules';
import { ConfigError } from '../config/load';
import { connectClient } from '../config/temporal-connection';
import { loadConfigWithSandbox } from '../config/sandbox';

const usage = "usage: npm run schedules [-- --delete]   (creates/updates the checklists' schedules from configuration; --delete removes them)";

class UsageError extends Error {}

/** `npm run schedules`: the Temporal Schedules of the maintenance checklists, made to match configuration. */
async function main(argv: string[]): Promise<void> {
  const unknown = argv.filter((arg) => arg !== '--delete');
  if (unknown.length > 0) throw new UsageError(`unknown argument ${unknown[0]}; ${usage}`);
  // Without TEMPORAL_ADDRESS: the Temporal server of this checkout's sandbox (as the runbook CLI does).
  const config = loadConfigWithSandbox(['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE']);
  const { address, namespace } = config.temporal;
  const temporal = await connectClient(config.temporal);
  try {
    const report = argv.includes('--delete') ? await deleteSchedules(temporal.client, config) : await ensureSchedules(temporal.client, config);
    process.stdout.write(`Schedules on ${address} (namespace ${namespace}, task queue ${config.temporal.taskQueue}, times in ${report.timezone}):\n`);
    for (const line of scheduleReportLines(report)) process.stdout.write(`  ${line}\n`);
  } finally {
    await temporal.close();
  }
}

/** One line, whatever failed: several config problems are joined with "; ". */
function oneLine(err: unknown): string {
  if (err instanceof ConfigError) return `schedules: invalid configuration: ${err.problems.join('; ')}`;
  return `schedules: ${(err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ')}`;
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${oneLine(err)}\n`);
    process.exit(err instanceof ConfigError || err instanceof UsageError ? 2 : 1);
  },
);
