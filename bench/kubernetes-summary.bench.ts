import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import { readTestbedEnv } from '../scripts/testbed';
import { waitUntil } from '../scripts/testbed/processes';
import { onKwokNode } from '../scripts/testbed/kubernetes-seed';
import { createKubernetesActivities } from '../activities/kubernetes';
import type { ListPodsResult } from '../activities/kubernetes-pods';

/**
 * Issue 4 (b): API requests and time of the pod-summary activity for 200 and 2,000 pods in a
 * scratch namespace (kwok makes them Running). Requests are counted at the KubeConfig, which
 * authenticates every request the client makes; the summary pages with limit=500.
 */
const pageSize = 500;

function pod(i: number): V1Pod {
  return {
    metadata: { name: `bench-${i}`, labels: { app: 'bench' } },
    spec: { ...onKwokNode, containers: [{ name: 'app', image: 'registry.example/bench:1', resources: { requests: { cpu: '1m', memory: '1Mi' } } }] },
  };
}

async function parallel(count: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

export default async function bench(): Promise<void> {
  const kubeconfig = readTestbedEnv().TESTBED_KUBECONFIG_ADMIN;
  if (!kubeconfig) throw new Error('TESTBED_KUBECONFIG_ADMIN missing from the test bed env file: start the test bed first');
  const admin = new KubeConfig();
  admin.loadFromFile(kubeconfig);
  const core = admin.makeApiClient(CoreV1Api);
  const namespace = `bench-pods-${Date.now().toString(36)}`;
  await core.createNamespace({ metadata: { name: namespace, labels: { 'runbook-testbed/scratch': 'true' } } });

  // A second KubeConfig for the activity, counting every request it authenticates.
  const counted = new KubeConfig();
  counted.loadFromFile(kubeconfig);
  let requests = 0;
  const apply = counted.applyToRequest.bind(counted);
  counted.applyToRequest = async (opts) => {
    requests++;
    return apply(opts);
  };
  const activities = createKubernetesActivities({ kube: counted, allowedNamespaces: [namespace] });
  const env = new MockActivityEnvironment();
  let created = 0;
  try {
    const rows: string[] = [];
    for (const target of [200, 2000]) {
      const t0 = Date.now();
      await parallel(target - created, 50, (i) => core.createNamespacedPod(namespace, pod(created + i)));
      created = target;
      await waitUntil(
        `${target} pods Running`,
        async () => {
          let running = 0;
          let token: string | undefined;
          do {
            const { body } = await core.listNamespacedPod(namespace, undefined, undefined, token, undefined, undefined, 1000);
            running += body.items.filter((p) => p.status?.phase === 'Running').length;
            token = body.metadata?._continue || undefined;
          } while (token);
          return running === target;
        },
        600_000,
      );
      console.log(`created ${target} pods, all Running, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      // One warm-up run (connection set-up), then measure.
      await env.run(activities.listPodSummaries, { namespace, pageSize });
      requests = 0;
      const start = process.hrtime.bigint();
      const result = (await env.run(activities.listPodSummaries, { namespace, pageSize })) as ListPodsResult;
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      rows.push(
        `${String(target).padStart(5)} pods | ${String(requests).padStart(3)} API requests | ${String(result.pages).padStart(3)} pages of ${pageSize} | ${ms.toFixed(0).padStart(5)} ms | ${result.counts.ready} ready`,
      );
    }
    console.log('pod-summary activity (listPodSummaries):');
    for (const row of rows) console.log(`  ${row}`);
    console.log(`  requests grow with ceil(pods / ${pageSize}) only: one LIST per page, none per pod`);
  } finally {
    await core.deleteNamespace(namespace).catch(() => undefined);
    console.log(`deleted namespace ${namespace} (pods are removed in the background)`);
  }
}
