import { Connection } from '@temporalio/client';
import { isAlive, readPid, restartDetached, stopDetached, waitUntil } from '../../scripts/testbed/processes';
import { layout } from './kube-cluster';

export interface ServerOutage {
  /** When the server stopped answering (ms since the epoch). */
  stoppedAt: number;
  /** Starts it again with the command line it had, and waits until it serves again. Idempotent. */
  restore(): Promise<void>;
}

/**
 * A real outage of one of this test bed's servers (its pid file's name): the process stopped by
 * `signal` (connections refused), to be started again with exactly its old command line, so its state on
 * disk (etcd's, the Temporal dev server's database file) carries over. `restore` waits, bounded,
 * until `serving` says it answers again.
 */
export async function stopServer(name: string, serving: () => Promise<boolean>, restartTimeoutMs = 120_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<ServerOutage> {
  const pid = readPid(layout.stateDir, name);
  if (pid === undefined || !isAlive(pid)) throw new Error(`${name} is not running`);
  await stopDetached(layout.stateDir, name, 30_000, signal);
  return outageFromNow(async () => {
    restartDetached(layout.stateDir, name);
    await waitUntil(`${name} serving again`, serving, restartTimeoutMs);
  });
}

/** An outage that began now, ended by `restore` (run once, however often it is called). */
export function outageFromNow(restore: () => Promise<void>): ServerOutage {
  let restored: Promise<void> | undefined;
  return { stoppedAt: Date.now(), restore: () => (restored ??= restore()) };
}

/**
 * The test bed's Temporal dev server stopped, to be started again on the same database file: runs
 * in flight, their timers and task queues carry over. Serving again means the namespace answers
 * (other test files of an in-band `npm test` share this server, so restore waits for that).
 */
export async function stopTemporalServer(temporal: { address: string; namespace: string }): Promise<ServerOutage> {
  return stopServer('temporal', async () => {
    const connection = await Connection.connect({ address: temporal.address, connectTimeout: 1000 });
    try {
      const { namespaceInfo } = await connection.workflowService.describeNamespace({ namespace: temporal.namespace });
      return namespaceInfo?.name === temporal.namespace;
    } finally {
      await connection.close();
    }
  });
}
