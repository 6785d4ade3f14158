import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import Redis from 'ioredis';
import type { SystemName } from '../../activities/errors';
import { serverAnswers } from '../../scripts/testbed';
import { waitUntil } from '../../scripts/testbed/processes';
import { adminKubeConfig, kubernetesNamespace, testbedRealNode, waitForRollout } from './kube-cluster';
import { stopApiserver } from './kube-outage';
import { postgresAnswers } from './postgres-container';
import { outageFromNow, stopServer, type ServerOutage } from './server-outage';
import { testbedEnv } from './testbed';

/** The systems a runbook changes, whose outage the crash matrix plays (activities/errors.ts names them so). */
export type DependencyName = Extract<SystemName, 'the Kubernetes API' | 'PostgreSQL' | 'Redis' | 'S3'>;

/**
 * One of the test bed's systems made unreachable for real until `restore`, which waits until it
 * answers again. short-drama-prod's PostgreSQL and Redis are pods on the real node: their Deployment
 * scaled to 0 (the Service has no endpoint, connections are refused) and back to 1. Without the
 * node (TESTBED_REAL_NODE=0) they are host processes, stopped and started again; PostgreSQL gets a
 * fast shutdown (SIGINT): a smart one would wait for the worker's pooled sessions to leave.
 */
export function stopDependency(system: DependencyName): Promise<ServerOutage> {
  const env = testbedEnv();
  const onNode = testbedRealNode() !== undefined;
  switch (system) {
    case 'the Kubernetes API':
      return stopApiserver();
    case 'PostgreSQL':
      return onNode ? stopPodsOf('postgres', () => postgresAnswers(env.TESTBED_DATABASE_ADMIN_URL!)) : stopServer('postgres', () => serverAnswers('postgres'), 120_000, 'SIGINT');
    case 'Redis':
      return onNode ? stopPodsOf('redis', () => redisAnswers(env.TESTBED_REDIS_ADMIN_URL!)) : stopServer('redis', () => serverAnswers('redis'));
    case 'S3':
      return stopServer('s3', () => serverAnswers('s3'));
  }
}

/** short-drama-prod's Deployment `name` at 0 replicas until `restore` scales it back to 1 and `answers`. */
async function stopPodsOf(name: string, answers: () => Promise<boolean>): Promise<ServerOutage> {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const scale = (replicas: number) =>
    apps.patchNamespacedDeploymentScale(name, kubernetesNamespace, { spec: { replicas } }, undefined, undefined, undefined, undefined, undefined, {
      headers: { 'Content-Type': 'application/merge-patch+json' },
    });
  await scale(0);
  await waitUntil(
    `no pod of ${name} left`,
    async () => (await core.listNamespacedPod(kubernetesNamespace, undefined, undefined, undefined, undefined, `app=${name}`)).body.items.length === 0,
    120_000,
  );
  return outageFromNow(async () => {
    await scale(1);
    await waitForRollout(kc, kubernetesNamespace, name, 180_000);
    await waitUntil(`${name} answering through its Service`, answers, 60_000);
  });
}

async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 3000 });
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } finally {
    redis.disconnect();
  }
}
