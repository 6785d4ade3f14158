import type { Client } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, type Logger, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { approvalsVerified, type RunbookConfig } from '../config/schema';
import { buildDependencies } from './dependencies';
import { createJsonLogger } from './logger';
import { connectClient, temporalTls } from '../config/temporal-connection';
import { payloadDataConverter } from '../config/payload-encryption';
import { startCodecServer, type CodecServer } from './codec-server';
import { startHealthServer } from './health-server';
import { workerVersioning } from './worker-versioning';
import type { Listening } from '../config/http-server';
import { runbookHistogramBuckets } from '../common/runbook-metrics';
import { startTracing, type Tracing } from '../config/tracing';
import { prebuiltBundle, workerTracing } from './tracing';

/** The workflow bundle every worker runs: the runbooks and the kernel's interceptors. */
export const workflowBundle = {
  workflowsPath: require.resolve('../workflows'),
  interceptors: { workflowModules: [require.resolve('../workflows/kernel/interceptors')] },
};

/** The same code bundled ahead of time (workers/bundle-workflows.ts), when configured: the interceptors are inside it. */
function workflowCode(config: RunbookConfig, tracing: Tracing | undefined): Pick<WorkerOptions, 'workflowsPath' | 'workflowBundle' | 'interceptors'> {
  return config.worker.workflowBundle ? { workflowBundle: { codePath: prebuiltBundle(config.worker.workflowBundle, tracing) } } : workflowBundle;
}

/** Installs the process-wide runtime once: JSON logs, Prometheus metrics, SIGINT/SIGTERM handling. */
export function installRuntime(config: RunbookConfig): Logger {
  const logger = createJsonLogger(config.worker.logLevel);
  Runtime.install({
    logger,
    telemetryOptions: {
      metrics: {
        // The SDK's metrics, and the kernel's runbook_* (common/runbook-metrics.ts) with buckets in seconds.
        prometheus: { bindAddress: `${config.worker.metricsHost}:${config.worker.metricsPort}`, histogramBucketOverrides: runbookHistogramBuckets },
      },
    },
    // On either signal the worker stops polling, lets in-flight activities finish (up to the grace time), then run() resolves.
    shutdownSignals: ['SIGINT', 'SIGTERM'],
  });
  return logger;
}

/** The codec server the Temporal UI decodes payloads with, when payload encryption configures one. */
function startConfiguredCodecServer(config: RunbookConfig, logger: Logger): Promise<CodecServer> | undefined {
  const encryption = config.temporal.payloadEncryption;
  if (!encryption?.codecServer) return undefined;
  const { listen, token, corsOrigins } = encryption.codecServer;
  return startCodecServer({ encryption, listen, token, corsOrigins, log: (level, message, fields) => logger[level](message, fields) });
}

/** What the worker runs besides polling, for the caller to print. */
export interface WorkerReady {
  /** The codec server's http://host:port, when payload encryption runs one. */
  codecServerUrl?: string;
  /** The health server's http://host:port (/readyz, /livez), when worker.healthListen is set. */
  healthUrl?: string;
}

/**
 * Runs the worker until a shutdown signal: every workflow of workflows/index.ts in one bundle,
 * every activity from createActivities, the codec server when configured, the real clients
 * closed at the end.
 */
export async function runWorker(config: RunbookConfig, logger: Logger, onReady?: (client: Client, ready: WorkerReady) => void): Promise<void> {
  const tracing = startTracing(config.tracing, 'runbook-worker');
  const temporal = await connectClient(config.temporal);
  const built = buildDependencies(config, logger, temporal.client);
  let connection: NativeConnection | undefined;
  let codecServer: CodecServer | undefined;
  let health: Listening | undefined;
  try {
    codecServer = await startConfiguredCodecServer(config, logger);
    connection = await NativeConnection.connect({
      address: config.temporal.address,
      tls: temporalTls(config.temporal.tls),
      apiKey: config.temporal.apiKey,
    });
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      ...workflowCode(config, tracing),
      dataConverter: payloadDataConverter(config.temporal.payloadEncryption),
      activities: createActivities(built.deps),
      shutdownGraceTime: `${config.worker.shutdownGraceSeconds} seconds`,
      ...workerVersioning(config.worker),
      ...workerTracing(tracing),
    });
    if (!approvalsVerified(config)) {
      logger.warn('APPROVALS ARE UNVERIFIED: no approver has a public key (RUNBOOK_APPROVERS publicKey), so anyone who can reach Temporal can approve as anyone. Configure keys (README "Approvals").');
    }
    if (config.temporal.payloadEncryption)
      logger.info('payload encryption on', { activeKeyId: config.temporal.payloadEncryption.activeKeyId, keyIds: Object.keys(config.temporal.payloadEncryption.keys) });
    health = config.worker.healthListen ? await startHealthServer(config.worker.healthListen, () => worker.getState()) : undefined;
    logger.info('worker ready', {
      taskQueue: config.temporal.taskQueue,
      namespace: config.temporal.namespace,
      metrics: `http://${config.worker.metricsHost}:${config.worker.metricsPort}/metrics`,
      ...(health ? { health: `${health.url}/readyz` } : {}),
      ...(config.worker.deploymentName ? { deploymentVersion: `${config.worker.deploymentName}.${config.worker.buildId}` } : {}),
    });
    onReady?.(temporal.client, { codecServerUrl: codecServer?.url, healthUrl: health?.url });
    await worker.run();
    logger.info('worker stopped');
  } finally {
    await health?.close();
    await codecServer?.close();
    await built.close();
    await connection?.close();
    await temporal.close();
    await tracing?.shutdown();
  }
}
