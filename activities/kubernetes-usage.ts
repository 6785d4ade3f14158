import type { V1Pod } from '@kubernetes/client-node';
import type { ContainerUsage, PodUsage, ResourceFigures } from '../common/pod-usage';
import { clients, guarded, kcall, parseQuantity, podSelectorOf, statusOf, type KubeScope, type PodScope } from './kubernetes-common';

export type { ContainerUsage, PodUsage, ResourceFigures } from '../common/pod-usage';

export type Unavailable = { available: false; reason: string };

export type PodUsageResult = Unavailable | { available: true; namespace: string; pods: PodUsage[] };

export interface NodeUsage {
  name: string;
  cpuMillicores: number;
  memoryBytes: number;
  allocatableCpuMillicores?: number;
  allocatableMemoryBytes?: number;
  cpuPercent?: number;
  memoryPercent?: number;
}

export type NodeUsageResult = Unavailable | { available: true; nodes: NodeUsage[] };

interface MetricsContainer {
  name: string;
  usage: { cpu?: string; memory?: string };
}
interface MetricsList<T> {
  items: T[];
  metadata?: { continue?: string };
}
interface PodMetrics {
  metadata: { name: string };
  containers: MetricsContainer[];
}
interface NodeMetrics {
  metadata: { name: string };
  usage: { cpu?: string; memory?: string };
}

const percent = (part: number, whole: number | undefined) => (whole ? Math.round((part / whole) * 1000) / 10 : undefined);
const millicores = (q: string | undefined) => {
  const v = parseQuantity(q);
  return v === undefined ? undefined : Math.round(v * 1000);
};
const bytes = (q: string | undefined) => {
  const v = parseQuantity(q);
  return v === undefined ? undefined : Math.round(v);
};

function figures(usage: number, request: number | undefined, limit: number | undefined): ResourceFigures {
  const f: ResourceFigures = { usage };
  if (request !== undefined) {
    f.request = request;
    f.percentOfRequest = percent(usage, request);
  }
  if (limit !== undefined) {
    f.limit = limit;
    f.percentOfLimit = percent(usage, limit);
  }
  return f;
}

/** 404 (no such API group), 503 (APIService unavailable) or an empty discovery: the metrics API is absent. */
function metricsAbsent(err: unknown): Unavailable | undefined {
  const status = statusOf(err);
  if (status === 404 || status === 503) {
    return { available: false, reason: `metrics API (metrics.k8s.io) ${status === 404 ? 'is not served by this cluster' : 'is unavailable (503)'}; install metrics-server` };
  }
  return undefined;
}

export function createKubernetesUsageActivities(scope: KubeScope) {
  return {
    /** `kubectl top pods` against requests/limits; `{ available: false }` when the metrics API is absent. */
    async getPodUsage(input: PodScope & { namespace: string }): Promise<PodUsageResult> {
      const { namespace } = input;
      const c = guarded(scope, namespace, { deployment: input.deployment });
      const { custom, core } = c;
      const labelSelector = await podSelectorOf(c, namespace, input);
      let metrics: MetricsList<PodMetrics>;
      try {
        metrics = (await custom.listNamespacedCustomObject('metrics.k8s.io', 'v1beta1', namespace, 'pods', undefined, undefined, undefined, undefined, labelSelector)).body as MetricsList<PodMetrics>;
      } catch (err) {
        const absent = metricsAbsent(err);
        if (absent) return absent;
        return kcall('list', 'pods.metrics.k8s.io', namespace, () => Promise.reject(err));
      }
      const specs = new Map<string, V1Pod>();
      let token: string | undefined;
      do {
        const { body } = await kcall('list', 'pods', namespace, () => core.listNamespacedPod(namespace, undefined, undefined, token, undefined, labelSelector, 500));
        for (const pod of body.items) specs.set(pod.metadata?.name ?? '', pod);
        token = body.metadata?._continue || undefined;
      } while (token);
      const pods = metrics.items.map((m): PodUsage => {
        const spec = specs.get(m.metadata.name)?.spec;
        const containers = m.containers.map((c): ContainerUsage => {
          const resources = spec?.containers.find((s) => s.name === c.name)?.resources;
          return {
            name: c.name,
            cpuMillicores: figures(millicores(c.usage.cpu) ?? 0, millicores(resources?.requests?.cpu), millicores(resources?.limits?.cpu)),
            memoryBytes: figures(bytes(c.usage.memory) ?? 0, bytes(resources?.requests?.memory), bytes(resources?.limits?.memory)),
          };
        });
        return {
          name: m.metadata.name,
          containers,
          cpuMillicores: containers.reduce((n, c) => n + c.cpuMillicores.usage, 0),
          memoryBytes: containers.reduce((n, c) => n + c.memoryBytes.usage, 0),
        };
      });
      return { available: true, namespace, pods: pods.sort((a, b) => a.name.localeCompare(b.name)) };
    },

    /** `kubectl top nodes`: usage against allocatable; `{ available: false }` when the metrics API is absent. */
    async getNodeUsage(): Promise<NodeUsageResult> {
      const { custom, core } = clients(scope);
      let metrics: MetricsList<NodeMetrics>;
      try {
        metrics = (await custom.listClusterCustomObject('metrics.k8s.io', 'v1beta1', 'nodes')).body as MetricsList<NodeMetrics>;
      } catch (err) {
        const absent = metricsAbsent(err);
        if (absent) return absent;
        return kcall('list', 'nodes.metrics.k8s.io', undefined, () => Promise.reject(err));
      }
      const { body } = await kcall('list', 'nodes', undefined, () => core.listNode());
      const nodes = metrics.items.map((m): NodeUsage => {
        const node = body.items.find((n) => n.metadata?.name === m.metadata.name);
        const cpu = millicores(m.usage.cpu) ?? 0;
        const memory = bytes(m.usage.memory) ?? 0;
        const allocCpu = millicores(node?.status?.allocatable?.cpu);
        const allocMem = bytes(node?.status?.allocatable?.memory);
        const u: NodeUsage = { name: m.metadata.name, cpuMillicores: cpu, memoryBytes: memory };
        if (allocCpu !== undefined) {
          u.allocatableCpuMillicores = allocCpu;
          u.cpuPercent = percent(cpu, allocCpu);
        }
        if (allocMem !== undefined) {
          u.allocatableMemoryBytes = allocMem;
          u.memoryPercent = percent(memory, allocMem);
        }
        return u;
      });
      return { available: true, nodes };
    },
  };
}
