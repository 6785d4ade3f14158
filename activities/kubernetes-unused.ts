import type { V1Deployment, V1PersistentVolumeClaim, V1Pod, V1Service } from '@kubernetes/client-node';
import { guarded, type KubeScope } from './kubernetes-common';
import { endpointCountsByService } from './kubernetes-network';
import { forEachListPage, pageSizeOf } from './kubernetes-paging';
import { revisionOf } from './kubernetes-rollouts';

export interface ListUnusedResourcesInput {
  namespace: string;
  /** Items per LIST page (default 500, at most 5000). */
  pageSize?: number;
}

export interface UnmountedClaim {
  name: string;
  phase: string;
  /** Requested size (spec.resources.requests.storage), e.g. 10Gi. */
  requested?: string;
  /** Actual size (status.capacity.storage). */
  capacity?: string;
  storageClass?: string;
  /** Deployments whose pod template names the claim (it is unused because they run no pod, e.g. at 0 replicas). */
  referencedByDeployments: string[];
  createdAt?: string;
}

export interface ScaledToZeroDeployment {
  name: string;
  createdAt?: string;
}

export interface ServiceWithoutReadyEndpoints {
  name: string;
  type: string;
  selector?: Record<string, string>;
  /** Addresses that exist but are not ready (pods failing readiness); 0 when nothing matches at all. */
  notReadyEndpoints: number;
}

export interface OldReplicaSetsOfDeployment {
  deployment: string;
  currentRevision: number;
  count: number;
  /** Oldest revision first. Kept for `rollout undo`: deleting them removes rollback targets. */
  replicaSets: string[];
}

export interface UnusedResourcesResult {
  namespace: string;
  /** PVCs no running or pending pod mounts. */
  unmountedClaims: UnmountedClaim[];
  /** Deployments with spec.replicas = 0. */
  scaledToZeroDeployments: ScaledToZeroDeployment[];
  /** Services (not ExternalName) with no ready endpoint address: they route nowhere. */
  servicesWithoutReadyEndpoints: ServiceWithoutReadyEndpoints[];
  /** ReplicaSets at 0 replicas owned by a Deployment and not of its current revision, per Deployment. */
  oldReplicaSets: OldReplicaSetsOfDeployment[];
  counts: { unmountedClaims: number; scaledToZeroDeployments: number; servicesWithoutReadyEndpoints: number; oldReplicaSets: number };
  /** LIST requests made: one per page of each resource, never one per object. */
  listRequests: number;
}

const isoTime = (t: Date | undefined): { createdAt?: string } => (t ? { createdAt: new Date(t).toISOString() } : {});

/** Claims a pod mounts: named claims, and the claims of generic ephemeral volumes (named <pod>-<volume>). */
function claimsMountedBy(pod: V1Pod): string[] {
  return (pod.spec?.volumes ?? []).flatMap((v) => {
    if (v.persistentVolumeClaim?.claimName) return [v.persistentVolumeClaim.claimName];
    if (v.ephemeral) return [`${pod.metadata?.name ?? ''}-${v.name}`];
    return [];
  });
}

interface OldReplicaSetCandidate {
  name: string;
  revision: number;
}

export function createKubernetesUnusedActivities(scope: KubeScope) {
  return {
    /**
     * The monthly review's "unused resources" (cost): PVCs mounted by no pod, Deployments at 0
     * replicas, Services without ready endpoints, old ReplicaSets. Reads only; every list is
     * paged (limit/continue), so requests grow with pages, not with objects.
     */
    async listUnusedResources(input: ListUnusedResourcesInput): Promise<UnusedResourcesResult> {
      const { namespace } = input;
      const { core, apps } = guarded(scope, namespace);
      const pageSize = pageSizeOf(input.pageSize);

      const mountedClaims = new Set<string>();
      const claims: V1PersistentVolumeClaim[] = [];
      const deployments: V1Deployment[] = [];
      const services: V1Service[] = [];
      /** ReplicaSets at 0 replicas with a revision, by the uid of the Deployment controlling them. */
      const zeroReplicaSetsByOwner = new Map<string, OldReplicaSetCandidate[]>();
      const [podPages, claimPages, deploymentPages, servicePages, replicaSetPages, endpoints] = await Promise.all([
        // Succeeded and Failed pods hold no volume; leaving them out server-side also keeps the pages short.
        forEachListPage(
          'pods',
          namespace,
          pageSize,
          (token, limit) => core.listNamespacedPod(namespace, undefined, undefined, token, 'status.phase!=Succeeded,status.phase!=Failed', undefined, limit),
          (items) => items.forEach((pod) => claimsMountedBy(pod).forEach((claim) => mountedClaims.add(claim))),
        ),
        forEachListPage(
          'persistentvolumeclaims',
          namespace,
          pageSize,
          (token, limit) => core.listNamespacedPersistentVolumeClaim(namespace, undefined, undefined, token, undefined, undefined, limit),
          (items) => claims.push(...items),
        ),
        forEachListPage(
          'deployments.apps',
          namespace,
          pageSize,
          (token, limit) => apps.listNamespacedDeployment(namespace, undefined, undefined, token, undefined, undefined, limit),
          (items) => deployments.push(...items),
        ),
        forEachListPage(
          'services',
          namespace,
          pageSize,
          (token, limit) => core.listNamespacedService(namespace, undefined, undefined, token, undefined, undefined, limit),
          (items) => services.push(...items),
        ),
        // Only ReplicaSets that could be old ones are kept: at 0 replicas, with a revision, controlled by a Deployment.
        forEachListPage(
          'replicasets.apps',
          namespace,
          pageSize,
          (token, limit) => apps.listNamespacedReplicaSet(namespace, undefined, undefined, token, undefined, undefined, limit),
          (items) => {
            for (const rs of items) {
              const owner = rs.metadata?.ownerReferences?.find((o) => o.controller && o.kind === 'Deployment');
              const revision = revisionOf(rs);
              if (!owner || rs.spec?.replicas !== 0 || revision === undefined) continue;
              const sameOwner = zeroReplicaSetsByOwner.get(owner.uid) ?? [];
              sameOwner.push({ name: rs.metadata?.name ?? '', revision });
              zeroReplicaSetsByOwner.set(owner.uid, sameOwner);
            }
          },
        ),
        endpointCountsByService(core, namespace, pageSize),
      ]);
      const listRequests = podPages + claimPages + deploymentPages + servicePages + replicaSetPages + endpoints.requests;

      const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);

      const unmountedClaims = claims
        .filter((c) => !mountedClaims.has(c.metadata?.name ?? ''))
        .map((c): UnmountedClaim => {
          const name = c.metadata?.name ?? '';
          const claim: UnmountedClaim = {
            name,
            phase: c.status?.phase ?? 'Unknown',
            referencedByDeployments: deployments
              .filter((d) => (d.spec?.template.spec?.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === name))
              .map((d) => d.metadata?.name ?? '')
              .sort(),
            ...isoTime(c.metadata?.creationTimestamp),
          };
          if (c.spec?.resources?.requests?.storage) claim.requested = c.spec.resources.requests.storage;
          if (c.status?.capacity?.storage) claim.capacity = c.status.capacity.storage;
          if (c.spec?.storageClassName) claim.storageClass = c.spec.storageClassName;
          return claim;
        })
        .sort(byName);

      const scaledToZeroDeployments = deployments
        .filter((d) => d.spec?.replicas === 0)
        .map((d): ScaledToZeroDeployment => ({ name: d.metadata?.name ?? '', ...isoTime(d.metadata?.creationTimestamp) }))
        .sort(byName);

      // ExternalName Services are a DNS alias: they never have endpoints, so none is no sign of disuse.
      const servicesWithoutReadyEndpoints = services
        .filter((s) => s.spec?.type !== 'ExternalName' && (endpoints.counts.get(s.metadata?.name ?? '')?.ready ?? 0) === 0)
        .map((s): ServiceWithoutReadyEndpoints => {
          const summary: ServiceWithoutReadyEndpoints = {
            name: s.metadata?.name ?? '',
            type: s.spec?.type ?? 'ClusterIP',
            notReadyEndpoints: endpoints.counts.get(s.metadata?.name ?? '')?.notReady ?? 0,
          };
          if (s.spec?.selector) summary.selector = s.spec.selector;
          return summary;
        })
        .sort(byName);

      // "Old" is relative to the owner's current revision; left out when either revision is unknown (cannot tell)
      // or the owner is not listed (being deleted).
      const oldReplicaSets: OldReplicaSetsOfDeployment[] = [];
      for (const d of deployments) {
        const currentRevision = revisionOf(d);
        if (currentRevision === undefined) continue;
        const old = (zeroReplicaSetsByOwner.get(d.metadata?.uid ?? '') ?? []).filter((rs) => rs.revision !== currentRevision).sort((a, b) => a.revision - b.revision);
        if (old.length === 0) continue;
        oldReplicaSets.push({ deployment: d.metadata?.name ?? '', currentRevision, count: old.length, replicaSets: old.map((rs) => rs.name) });
      }
      oldReplicaSets.sort((a, b) => a.deployment.localeCompare(b.deployment));

      return {
        namespace,
        unmountedClaims,
        scaledToZeroDeployments,
        servicesWithoutReadyEndpoints,
        oldReplicaSets,
        counts: {
          unmountedClaims: unmountedClaims.length,
          scaledToZeroDeployments: scaledToZeroDeployments.length,
          servicesWithoutReadyEndpoints: servicesWithoutReadyEndpoints.length,
          oldReplicaSets: oldReplicaSets.reduce((n, d) => n + d.count, 0),
        },
        listRequests,
      };
    },
  };
}
