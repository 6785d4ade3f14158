import { readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { isAlive, readPid, startDetached, stopDetached, waitUntil } from '../../scripts/testbed/processes';
import { adminKubeConfig, kubernetesNamespace, layout } from './kube-cluster';

export interface ApiserverOutage {
  /** When the apiserver stopped answering (ms since the epoch). */
  stoppedAt: number;
  /** Starts it again with the command line it had, and waits until it serves the namespace again. Idempotent. */
  restore(): Promise<void>;
}

/**
 * A real Kubernetes API outage: this test bed's kube-apiserver process stopped (connections
 * refused), then started again with exactly its old command line. etcd keeps the state, and the
 * controller-manager, scheduler and kwok reconnect (no leader election in the test bed).
 */
export async function stopApiserver(): Promise<ApiserverOutage> {
  const pid = readPid(layout.stateDir, 'kube-apiserver');
  if (pid === undefined || !isAlive(pid)) throw new Error('kube-apiserver is not running');
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  await stopDetached(layout.stateDir, 'kube-apiserver');
  const stoppedAt = Date.now();
  let restored: Promise<void> | undefined;
  return {
    stoppedAt,
    restore: () =>
      (restored ??= (async () => {
        startDetached(layout.stateDir, 'kube-apiserver', argv[0]!, argv.slice(1));
        const core = adminKubeConfig().makeApiClient(CoreV1Api);
        await waitUntil('kube-apiserver serving again', async () => (await core.readNamespace(kubernetesNamespace)).response.statusCode === 200, 120_000);
      })()),
  };
}
