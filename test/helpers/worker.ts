import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { createRunbookClient, type RunbookClient, type RunbookClientOptions } from '../../client/runbook-client';
import type { RunbookConfig } from '../../config/schema';
import { buildDependencies } from '../../workers/dependencies';
import { workflowBundle } from '../../workers/run-worker';
import { workerVersioning } from '../../workers/worker-versioning';
import { payloadDataConverter } from '../../config/payload-encryption';
import { cachedWorkflowBundle } from './workflow-bundles';

export interface WorkerHarness {
  client: Client;
  taskQueue: string;
}

/**
 * Runs a real worker (the production bundle of workflows/ and real activities, or replacements
 * for some of them) against the test bed's Temporal server while `body` runs.
 */
export interface WorkerOptions {
  /** Activities to use instead of (or besides) the real ones. */
  activities?: Record<string, (...args: never[]) => Promise<unknown>>;
  /** The production workflows by default; test/workflows adds test-only runbooks. */
  workflowsPath?: string;
  /** Workflow interceptor modules (e.g. test/workflows/delayed-signal-interceptors.ts to widen a race window). */
  workflowInterceptorModules?: string[];
}

export async function withWorker<T>(config: RunbookConfig, body: (harness: WorkerHarness) => Promise<T>, options: WorkerOptions = {}): Promise<T> {
  const nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter: payloadDataConverter(config.temporal.payloadEncryption) });
  const built = buildDependencies(config, Runtime.instance().logger, client);
  try {
    const worker = await Worker.create({
      connection: nativeConnection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: await cachedWorkflowBundle(options.workflowsPath ?? workflowBundle.workflowsPath, [
        ...workflowBundle.interceptors.workflowModules,
        ...(options.workflowInterceptorModules ?? []),
      ]),
      dataConverter: payloadDataConverter(config.temporal.payloadEncryption),
      activities: { ...createActivities(built.deps), ...options.activities },
      // A version of a Worker Deployment when the config names one (WORKER_DEPLOYMENT_NAME, WORKER_BUILD_ID), as the worker process does.
      ...workerVersioning(config.worker),
    });
    return await worker.runUntil(body({ client, taskQueue: config.temporal.taskQueue }));
  } finally {
    await built.close();
    await connection.close();
    await nativeConnection.close();
  }
}

/** withWorker with the client API ready: the usual shape of a runbook test. */
export function withRunbooks<T>(
  config: RunbookConfig,
  body: (harness: WorkerHarness & { runbooks: RunbookClient }) => Promise<T>,
  options: WorkerOptions & { catalog?: RunbookClientOptions['catalog']; signer?: RunbookClientOptions['signer'] } = {},
): Promise<T> {
  const { catalog, signer, ...workerOptions } = options;
  return withWorker(config, (harness) => body({ ...harness, runbooks: createRunbookClient({ ...harness, catalog, signer }) }), workerOptions);
}

/**
 * The client API only, for workers that run elsewhere (the worker pods on the real node): the
 * usual shape of a runbook test, without a worker of its own.
 */
export async function withRunbookClient<T>(config: RunbookConfig, body: (harness: WorkerHarness & { runbooks: RunbookClient }) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: config.temporal.address });
  try {
    const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter: payloadDataConverter(config.temporal.payloadEncryption) });
    const harness = { client, taskQueue: config.temporal.taskQueue };
    return await body({ ...harness, runbooks: createRunbookClient(harness) });
  } finally {
    await connection.close();
  }
}
