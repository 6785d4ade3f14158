import { refused, invalidInput } from './errors';
import { assertQuantity, change, clients, dryRunParam, guarded, kcall, mergePatch, parseQuantity, readOptional, type Change, type KubeScope } from './kubernetes-common';

export interface PvcSummary {
  name: string;
  phase: string;
  /** Actual size (status.capacity.storage), e.g. 10Gi. */
  capacity?: string;
  /** Requested size (spec.resources.requests.storage). */
  requested?: string;
  storageClass?: string;
  /** Whether the StorageClass allows expansion (false when it has none or does not exist). */
  allowsExpansion: boolean;
  volume?: string;
  accessModes: string[];
  /** Resize conditions, e.g. FileSystemResizePending. */
  conditions: string[];
}

export interface ExpandPvcInput {
  namespace: string;
  name: string;
  /** New size, e.g. 20Gi; must not be smaller than the current request. */
  size: string;
  dryRun?: boolean;
}

export function createKubernetesStorageActivities(scope: KubeScope) {
  async function allowsExpansion(className: string | undefined): Promise<boolean> {
    if (!className) return false;
    const { storage } = clients(scope);
    const sc = await readOptional('get', `storageclasses.storage.k8s.io/${className}`, undefined, () => storage.readStorageClass(className));
    return sc?.allowVolumeExpansion === true;
  }

  return {
    /** PVCs: phase, capacity, StorageClass and whether it allows expansion. */
    async listPersistentVolumeClaims(input: { namespace: string }): Promise<{ namespace: string; claims: PvcSummary[] }> {
      const { namespace } = input;
      const { core, storage } = guarded(scope, namespace);
      const { body } = await kcall('list', 'persistentvolumeclaims', namespace, () => core.listNamespacedPersistentVolumeClaim(namespace));
      const { body: classes } = await kcall('list', 'storageclasses.storage.k8s.io', undefined, () => storage.listStorageClass());
      return {
        namespace,
        claims: body.items.map((p): PvcSummary => {
          const className = p.spec?.storageClassName;
          const summary: PvcSummary = {
            name: p.metadata?.name ?? '',
            phase: p.status?.phase ?? 'Unknown',
            allowsExpansion: classes.items.some((c) => c.metadata?.name === className && c.allowVolumeExpansion === true),
            accessModes: p.spec?.accessModes ?? [],
            conditions: (p.status?.conditions ?? []).filter((c) => c.status === 'True').map((c) => c.type),
          };
          if (p.status?.capacity?.storage) summary.capacity = p.status.capacity.storage;
          if (p.spec?.resources?.requests?.storage) summary.requested = p.spec.resources.requests.storage;
          if (className) summary.storageClass = className;
          if (p.spec?.volumeName) summary.volume = p.spec.volumeName;
          return summary;
        }),
      };
    },

    /**
     * Raises a PVC's requested size. Refused when its StorageClass does not allow expansion;
     * a size not above the current request changes nothing (shrinking is refused).
     */
    async expandPersistentVolumeClaim(input: ExpandPvcInput): Promise<Change<{ requested?: string }> & { storageClass?: string }> {
      const { namespace, name, size, dryRun } = input;
      const { core } = guarded(scope, namespace, { name });
      if (typeof size !== 'string') throw invalidInput('size is required, e.g. 20Gi');
      assertQuantity(size, 'size');
      const { body: pvc } = await kcall('get', `persistentvolumeclaims/${name}`, namespace, () => core.readNamespacedPersistentVolumeClaim(name, namespace));
      const current = pvc.spec?.resources?.requests?.storage;
      const className = pvc.spec?.storageClassName;
      const wanted = parseQuantity(size)!;
      const have = parseQuantity(current) ?? 0;
      if (wanted === have) return { ...change({ requested: current }, { requested: current }, dryRun, ''), ...(className ? { storageClass: className } : {}) };
      if (wanted < have) throw invalidInput(`persistentvolumeclaims/${name} in namespace ${namespace} requests ${current}; ${size} would shrink it, which Kubernetes does not allow`);
      if (!(await allowsExpansion(className))) {
        throw refused(
          `persistentvolumeclaims/${name} in namespace ${namespace} cannot be expanded: its StorageClass ${className ?? '(none)'} does not allow volume expansion (allowVolumeExpansion is not true)`,
        );
      }
      const { body: after } = await kcall('patch', `persistentvolumeclaims/${name}`, namespace, () =>
        core.patchNamespacedPersistentVolumeClaim(
          name,
          namespace,
          { spec: { resources: { requests: { storage: size } } } },
          undefined,
          dryRunParam(dryRun),
          'runbook-automation',
          undefined,
          undefined,
          mergePatch,
        ),
      );
      return {
        ...change({ requested: current }, { requested: after.spec?.resources?.requests?.storage }, dryRun, `persistentvolumeclaims/${name} request ${current} -> ${size}`),
        ...(className ? { storageClass: className } : {}),
      };
    },
  };
}
