import { CoreV1Api } from '@kubernetes/client-node';
import { adminKubeConfig, kubernetesNamespace } from './kube-cluster';
import { stopServer, type ServerOutage } from './server-outage';

export type ApiserverOutage = ServerOutage;

/**
 * A real Kubernetes API outage: this test bed's kube-apiserver process stopped (connections
 * refused), then started again with exactly its old command line. etcd keeps the state, and the
 * controller-manager, scheduler and kwok reconnect (no leader election in the test bed).
 */
export async function stopApiserver(): Promise<ApiserverOutage> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  return stopServer('kube-apiserver', async () => (await core.readNamespace(kubernetesNamespace)).response.statusCode === 200);
}
