import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities, type Activities } from '../../activities';
import type { RunbookConfig } from '../../config/schema';
import { buildDependencies } from '../../workers/dependencies';

export interface WorkerHarness {
  client: Client;
  taskQueue: string;
}

/**
 * Runs a real worker (the production bundle of workflows/ and real activities, or replacements
 * for some of them) against the test bed's Temporal server while `body` runs.
 */
export async function withWorker<T>(
  config: RunbookConfig,
  body: (harness: WorkerHarness) => Promise<T>,
  replaceActivities: Partial<Activities> = {},
): Promise<T> {
  const built = buildDependencies(config, Runtime.instance().logger);
  const nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
  const connection = await Connection.connect({ address: config.temporal.address });
  try {
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowsPath: require.resolve('../../workflows'),
      activities: { ...createActivities(built.deps), ...replaceActivities },
    });
    const client = new Client({ connection, namespace: config.temporal.namespace });
    return await worker.runUntil(body({ client, taskQueue: config.temporal.taskQueue }));
  } finally {
    await built.close();
    await connection.close();
    await nativeConnection.close();
  }
}
