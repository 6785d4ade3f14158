/**
 * The crash matrix's scenarios: each on scratch objects of its own (unique names, so other test
 * files are not disturbed), with a reset to the same starting state and a snapshot of everything the
 * runbook may change, including what shows a double effect (generations, ReplicaSets, annotations).
 */
import { AppsV1Api, AutoscalingV2Api, NetworkingV1Api } from '@kubernetes/client-node';
import { rateLimitAnnotation } from '../../common/inputs/traffic-control';
import { deleteDeployment, scratchDeployment, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as namespace, statusOf } from '../helpers/kube-cluster';
import { unsignedTeam } from '../helpers/testbed';
import { waitUntil } from '../../scripts/testbed/processes';
import type { CrashScenario } from './harness';

const approvers = { RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam) };
const ignore404 = (err: unknown) => {
  if (statusOf(err) !== 404) throw err;
};

/** Waits until the object is gone (a deleted Deployment's ReplicaSets go first with foreground deletion). */
async function gone(what: string, read: () => Promise<unknown>): Promise<void> {
  await waitUntil(`${what} deleted`, async () =>
    read().then(
      () => false,
      (err: unknown) => {
        ignore404(err);
        return true;
      },
    ),
  );
}

/** 紧急扩容 on a scratch Deployment (1 replica) with an HPA (min 1, max 2): to 3 replicas and raised limits. */
export function emergencyScaleScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const name = unique('crash-es');
  const remove = async () => {
    await autoscaling.deleteNamespacedHorizontalPodAutoscaler(name, namespace).catch(ignore404);
    await deleteDeployment(kc, name);
    await gone(`deployment ${name}`, () => apps.readNamespacedDeployment(name, namespace));
    await gone(`hpa ${name}`, () => autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace));
  };
  return {
    runbook: 'emergencyScale',
    configOverrides: approvers,
    setup: async () => undefined,
    reset: async () => {
      await remove();
      await scratchDeployment(kc, name);
      await autoscaling.createNamespacedHorizontalPodAutoscaler(namespace, {
        metadata: { name, labels: { 'runbook-test/scratch': 'true' } },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
          minReplicas: 1,
          maxReplicas: 2,
          metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
        },
      });
    },
    input: () => ({ deployment: name, severity: 'P1', replicas: 3, limits: { cpu: '1', memory: '512Mi' } }),
    snapshot: async () => {
      const { body: d } = await apps.readNamespacedDeployment(name, namespace);
      const { body: hpa } = await autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace);
      const { body: sets } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${name}`);
      return {
        replicas: d.spec!.replicas,
        generation: d.metadata!.generation,
        annotations: d.metadata!.annotations ?? {},
        template: JSON.parse(JSON.stringify(d.spec!.template)) as unknown,
        hpa: { minReplicas: hpa.spec!.minReplicas, maxReplicas: hpa.spec!.maxReplicas, generation: hpa.metadata!.generation },
        replicaSets: sets.items.length,
      };
    },
    teardown: remove,
  };
}

/** 流量控制 on a scratch Ingress (limit-rps 100, like the seeded app-ingress): the rate limit to 20 rps. */
export function trafficControlScenario(): CrashScenario {
  const kc = adminKubeConfig();
  const networking = kc.makeApiClient(NetworkingV1Api);
  const name = unique('crash-tc');
  const remove = async () => {
    await networking.deleteNamespacedIngress(name, namespace).catch(ignore404);
    await gone(`ingress ${name}`, () => networking.readNamespacedIngress(name, namespace));
  };
  return {
    runbook: 'trafficControl',
    configOverrides: approvers,
    setup: async () => undefined,
    reset: async () => {
      await remove();
      await networking.createNamespacedIngress(namespace, {
        metadata: { name, labels: { 'runbook-test/scratch': 'true' }, annotations: { [rateLimitAnnotation]: '100', 'nginx.ingress.kubernetes.io/proxy-body-size': '50m' } },
        spec: {
          ingressClassName: 'nginx',
          rules: [{ host: `${name}.example`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'short-drama-app', port: { number: 80 } } } }] } }],
        },
      });
    },
    input: () => ({ ingress: name, rps: 20 }),
    snapshot: async () => {
      const { body: ingress } = await networking.readNamespacedIngress(name, namespace);
      return { annotations: ingress.metadata!.annotations ?? {}, generation: ingress.metadata!.generation, spec: JSON.parse(JSON.stringify(ingress.spec)) as unknown };
    },
    teardown: remove,
  };
}

export const scenarios: Record<string, () => CrashScenario> = {
  emergencyScale: emergencyScaleScenario,
  trafficControl: trafficControlScenario,
};
