import { ConfigError, loadConfig } from '../config/load';
import { installRuntime, runWorker } from './run-worker';

/** The worker process: configuration from the environment and/or $RUNBOOK_CONFIG. */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = installRuntime(config);
  await runWorker(config, logger);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    console.error(JSON.stringify({ level: 'ERROR', message: 'worker failed', error: err instanceof Error ? err.stack : String(err) }));
    process.exit(1);
  },
);
