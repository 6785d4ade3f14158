import { Client, Connection } from '@temporalio/client';
import type { RunbookConfig } from '../config/schema';
import { temporalTls } from './temporal-tls';

/** A Temporal client from configuration (used by the worker's lock activity, the client API and the CLI). */
export async function connectClient(temporal: RunbookConfig['temporal']): Promise<{ client: Client; close: () => Promise<void> }> {
  const connection = await Connection.connect({ address: temporal.address, tls: temporalTls(temporal.tls), apiKey: temporal.apiKey });
  return { client: new Client({ connection, namespace: temporal.namespace }), close: () => connection.close() };
}
