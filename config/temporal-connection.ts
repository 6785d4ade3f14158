import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { payloadDataConverter } from './payload-encryption';
import type { RunbookConfig } from './schema';
import { tracingClientInterceptors } from './tracing';

/** TLS options for Temporal connections (worker and client alike), read from the configured files. */
export function temporalTls(tls: RunbookConfig['temporal']['tls']) {
  if (!tls.enabled) return undefined;
  return {
    serverNameOverride: tls.serverName,
    serverRootCACertificate: tls.caFile ? readFileSync(tls.caFile) : undefined,
    clientCertPair: tls.certFile && tls.keyFile ? { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : undefined,
  };
}

/**
 * A Temporal client from configuration (used by the worker's lock activity, the client API, the CLI
 * and the alert bridge), encrypting payloads when keys are configured and carrying the active span
 * to the workflows it starts while tracing runs (config/tracing.ts). `lazy`: connects on the first call instead of now, so it is had even while
 * Temporal is down.
 */
export async function connectClient(temporal: RunbookConfig['temporal'], options: { lazy?: boolean } = {}): Promise<{ client: Client; close: () => Promise<void> }> {
  const connectionOptions = { address: temporal.address, tls: temporalTls(temporal.tls), apiKey: temporal.apiKey };
  // gRPC's own words ("Failed to connect before the deadline") do not say where: this does.
  const connection = options.lazy
    ? Connection.lazy(connectionOptions)
    : await Connection.connect(connectionOptions).catch((err: unknown) => {
        throw new Error(`cannot reach Temporal at ${temporal.address}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
  return {
    client: new Client({ connection, namespace: temporal.namespace, dataConverter: payloadDataConverter(temporal.payloadEncryption), interceptors: { workflow: tracingClientInterceptors() } }),
    close: () => connection.close(),
  };
}
