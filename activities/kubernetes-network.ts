import type { CoreV1Api } from '@kubernetes/client-node';
import { invalidInput } from './errors';
import { canonical, change, dryRunParam, fieldManager, guarded, kcall, mergePatch, positiveInt, type Change, type KubeScope } from './kubernetes-common';
import { defaultPageSize, forEachListPage } from './kubernetes-paging';

export interface ServiceSummary {
  name: string;
  type: string;
  clusterIP?: string;
  ports: string[];
  selector?: Record<string, string>;
  readyEndpoints: number;
  notReadyEndpoints: number;
}

export interface IngressSummary {
  name: string;
  className?: string;
  hosts: string[];
  tls: Array<{ hosts: string[]; secretName?: string }>;
  annotations: Record<string, string>;
  /** host+path -> service:port */
  routes: string[];
  addresses: string[];
}

export interface HpaSummary {
  name: string;
  target: string;
  minReplicas: number;
  maxReplicas: number;
  currentReplicas: number;
  desiredReplicas: number;
  atMax: boolean;
  metrics: string[];
}

export interface EndpointCounts {
  ready: number;
  notReady: number;
}

/**
 * Ready and not-ready endpoint addresses per Service name, from the namespace's Endpoints
 * (an Endpoints object has its Service's name), read page by page. A Service missing from the
 * map has no Endpoints object: no endpoints at all. Shared by listServices and listUnusedResources.
 */
export async function endpointCountsByService(core: CoreV1Api, namespace: string, pageSize = defaultPageSize): Promise<{ counts: Map<string, EndpointCounts>; requests: number }> {
  const counts = new Map<string, EndpointCounts>();
  const requests = await forEachListPage(
    'endpoints',
    namespace,
    pageSize,
    (token, limit) => core.listNamespacedEndpoints(namespace, undefined, undefined, token, undefined, undefined, limit),
    (items) => {
      for (const ep of items) {
        const subsets = ep.subsets ?? [];
        counts.set(ep.metadata?.name ?? '', {
          ready: subsets.reduce((n, sub) => n + (sub.addresses?.length ?? 0), 0),
          notReady: subsets.reduce((n, sub) => n + (sub.notReadyAddresses?.length ?? 0), 0),
        });
      }
    },
  );
  return { counts, requests };
}

export function createKubernetesNetworkActivities(scope: KubeScope) {
  return {
    /** Services with the number of ready and not-ready endpoint addresses (a LIST of services, a paged LIST of endpoints). */
    async listServices(input: { namespace: string }): Promise<{ namespace: string; services: ServiceSummary[] }> {
      const { namespace } = input;
      const { core } = guarded(scope, namespace);
      const { body: services } = await kcall('list', 'services', namespace, () => core.listNamespacedService(namespace));
      const { counts } = await endpointCountsByService(core, namespace);
      return {
        namespace,
        services: services.items.map((s): ServiceSummary => {
          const endpoints = counts.get(s.metadata?.name ?? '');
          const summary: ServiceSummary = {
            name: s.metadata?.name ?? '',
            type: s.spec?.type ?? 'ClusterIP',
            ports: (s.spec?.ports ?? []).map((p) => `${p.name ? `${p.name}:` : ''}${p.port}/${p.protocol ?? 'TCP'}${p.targetPort !== undefined ? `->${p.targetPort}` : ''}`),
            readyEndpoints: endpoints?.ready ?? 0,
            notReadyEndpoints: endpoints?.notReady ?? 0,
          };
          if (s.spec?.clusterIP) summary.clusterIP = s.spec.clusterIP;
          if (s.spec?.selector) summary.selector = s.spec.selector;
          return summary;
        }),
      };
    },

    /** Ingresses (or one by name): hosts, TLS, annotations, routes, load-balancer addresses. */
    async listIngresses(input: { namespace: string; name?: string }): Promise<{ namespace: string; ingresses: IngressSummary[] }> {
      const { namespace, name } = input;
      const { networking } = guarded(scope, namespace, { name });
      const items = name
        ? [(await kcall('get', `ingresses/${name}`, namespace, () => networking.readNamespacedIngress(name, namespace))).body]
        : (await kcall('list', 'ingresses', namespace, () => networking.listNamespacedIngress(namespace))).body.items;
      return {
        namespace,
        ingresses: items.map((i): IngressSummary => {
          const rules = i.spec?.rules ?? [];
          const summary: IngressSummary = {
            name: i.metadata?.name ?? '',
            hosts: [...new Set(rules.map((r) => r.host).filter((h): h is string => !!h))],
            tls: (i.spec?.tls ?? []).map((t) => ({ hosts: t.hosts ?? [], ...(t.secretName ? { secretName: t.secretName } : {}) })),
            annotations: { ...(i.metadata?.annotations ?? {}) },
            routes: rules.flatMap((r) =>
              (r.http?.paths ?? []).map(
                (p) => `${r.host ?? '*'}${p.path ?? '/'} -> ${p.backend.service?.name ?? p.backend.resource?.name ?? '?'}:${p.backend.service?.port?.number ?? p.backend.service?.port?.name ?? ''}`,
              ),
            ),
            addresses: (i.status?.loadBalancer?.ingress ?? []).map((a) => a.ip ?? a.hostname ?? '').filter(Boolean),
          };
          if (i.spec?.ingressClassName) summary.className = i.spec.ingressClassName;
          return summary;
        }),
      };
    },

    /** HorizontalPodAutoscalers: current/desired replicas against min/max. */
    async listHorizontalPodAutoscalers(input: { namespace: string; name?: string }): Promise<{ namespace: string; autoscalers: HpaSummary[] }> {
      const { namespace, name } = input;
      const { autoscaling } = guarded(scope, namespace, { name });
      const { body } = await kcall('list', 'horizontalpodautoscalers.autoscaling', namespace, () =>
        autoscaling.listNamespacedHorizontalPodAutoscaler(namespace, undefined, undefined, undefined, name ? `metadata.name=${name}` : undefined),
      );
      if (name && body.items.length === 0) {
        await kcall('get', `horizontalpodautoscalers.autoscaling/${name}`, namespace, () => autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace));
      }
      return {
        namespace,
        autoscalers: body.items.map((h): HpaSummary => {
          const max = h.spec?.maxReplicas ?? 0;
          const current = h.status?.currentReplicas ?? 0;
          return {
            name: h.metadata?.name ?? '',
            target: `${h.spec?.scaleTargetRef.kind}/${h.spec?.scaleTargetRef.name}`,
            minReplicas: h.spec?.minReplicas ?? 1,
            maxReplicas: max,
            currentReplicas: current,
            desiredReplicas: h.status?.desiredReplicas ?? 0,
            atMax: current >= max && max > 0,
            metrics: (h.spec?.metrics ?? []).map((m) => {
              const r = m.resource;
              if (r) return `${r.name} ${r.target.averageUtilization !== undefined ? `${r.target.averageUtilization}%` : (r.target.averageValue ?? r.target.value ?? '')}`;
              return m.type;
            }),
          };
        }),
      };
    },

    /**
     * Sets an HPA's minReplicas and/or maxReplicas (only the bounds given; merge patch, or a
     * server-side dry run). The same bounds again change nothing. emergencyScale raises them so
     * the autoscaler holds a scaled-up Deployment instead of scaling it back, and restores them.
     */
    async setAutoscalerReplicas(input: {
      namespace: string;
      name: string;
      minReplicas?: number;
      maxReplicas?: number;
      dryRun?: boolean;
    }): Promise<Change<{ minReplicas: number; maxReplicas: number }>> {
      const { namespace, name, dryRun } = input;
      const { autoscaling } = guarded(scope, namespace, { name });
      if (input.minReplicas === undefined && input.maxReplicas === undefined) throw invalidInput('give minReplicas or maxReplicas');
      positiveInt(input.minReplicas, 'minReplicas', 1000);
      positiveInt(input.maxReplicas, 'maxReplicas', 1000);
      const what = `horizontalpodautoscalers.autoscaling/${name}`;
      const bounds = (h: { spec?: { minReplicas?: number; maxReplicas: number } }) => ({ minReplicas: h.spec?.minReplicas ?? 1, maxReplicas: h.spec?.maxReplicas ?? 0 });
      const { body: current } = await kcall('get', what, namespace, () => autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace));
      const before = bounds(current);
      const wanted = { minReplicas: input.minReplicas ?? before.minReplicas, maxReplicas: input.maxReplicas ?? before.maxReplicas };
      if (wanted.minReplicas < 1) throw invalidInput('minReplicas must be at least 1');
      if (wanted.minReplicas > wanted.maxReplicas) throw invalidInput(`${what} in namespace ${namespace}: minReplicas ${wanted.minReplicas} would be above maxReplicas ${wanted.maxReplicas}`);
      if (canonical(before) === canonical(wanted)) return change(before, before, dryRun, '');
      const spec = { ...(input.minReplicas !== undefined ? { minReplicas: input.minReplicas } : {}), ...(input.maxReplicas !== undefined ? { maxReplicas: input.maxReplicas } : {}) };
      const { body: after } = await kcall('patch', what, namespace, () =>
        autoscaling.patchNamespacedHorizontalPodAutoscaler(name, namespace, { spec }, undefined, dryRunParam(dryRun), fieldManager, undefined, undefined, mergePatch),
      );
      return change(before, bounds(after), dryRun, `${what} minReplicas ${before.minReplicas} -> ${wanted.minReplicas}, maxReplicas ${before.maxReplicas} -> ${wanted.maxReplicas}`);
    },
  };
}
