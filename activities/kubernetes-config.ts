import { createHash } from 'node:crypto';
import {
  loadAllYaml,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Deployment,
  type V1Ingress,
  type V1PersistentVolumeClaim,
  type V1PolicyRule,
  type V1Secret,
  type V1Service,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { failure, invalidInput, refused } from './errors';
import { tunnelProblem } from '../common/rbac-tunnels';
import { scrubForEvidence, withoutLastApplied } from '../common/evidence-scrub';
import { applyPatch, canonical, change, dryRunParam, fieldManager, guarded, kcall, mergePatch, readOptional, type Change, type KubeClients, type KubeScope } from './kubernetes-common';

/** Kinds whose annotations the runbooks set (trafficControl on Ingress, notes on workloads). */
const annotatableKinds: Record<string, { apiVersion: string; resource: string }> = {
  Ingress: { apiVersion: 'networking.k8s.io/v1', resource: 'ingresses.networking.k8s.io' },
  Deployment: { apiVersion: 'apps/v1', resource: 'deployments.apps' },
  StatefulSet: { apiVersion: 'apps/v1', resource: 'statefulsets.apps' },
  Service: { apiVersion: 'v1', resource: 'services' },
  ConfigMap: { apiVersion: 'v1', resource: 'configmaps' },
  PersistentVolumeClaim: { apiVersion: 'v1', resource: 'persistentvolumeclaims' },
  Pod: { apiVersion: 'v1', resource: 'pods' },
};

const annotationKey = /^(([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const secretKey = /^[-._a-zA-Z0-9]{1,253}$/;

export interface SetAnnotationsInput {
  namespace: string;
  kind: keyof typeof annotatableKinds | string;
  name: string;
  /** Annotations to set. */
  set?: Record<string, string>;
  /** Annotations to remove. */
  remove?: string[];
  dryRun?: boolean;
}

export interface ApplyInput {
  namespace: string;
  /** One object, as JSON or as YAML text. */
  manifest: Record<string, unknown> | string;
  /** Take over fields another manager owns (server-side apply force). */
  force?: boolean;
  dryRun?: boolean;
}

export interface ApplyResult {
  kind: string;
  name: string;
  namespace: string;
  /** created, configured or unchanged (what kubectl apply prints). */
  action: 'created' | 'configured' | 'unchanged';
  changed: boolean;
  dryRun: boolean;
}

export interface AccessInput {
  namespace: string;
  serviceAccount: string;
  role: string;
  roleBinding: string;
  rules: V1PolicyRule[];
  dryRun?: boolean;
}

export interface NamespaceSnapshot {
  namespace: string;
  takenAt: string;
  deployments: Array<{ name: string; replicas?: number; revision?: string; containers: Array<{ name: string; image?: string; requests?: Record<string, string>; limits?: Record<string, string> }> }>;
  statefulSets: Array<{ name: string; replicas?: number; images: string[] }>;
  configMaps: Array<{ name: string; keys: string[]; sha256: string }>;
  /** Names, types and keys only: never values. */
  secrets: Array<{ name: string; type?: string; keys: string[] }>;
  persistentVolumeClaims: Array<{ name: string; phase?: string; storageClass?: string; requested?: string; capacity?: string }>;
  ingresses: Array<{ name: string; hosts: string[]; tlsSecrets: string[]; annotations: Record<string, string> }>;
  services: Array<{ name: string; type?: string; ports: number[] }>;
}

/** Metadata the server maintains: never part of a comparison or a diff. */
export const volatileMetadata = ['managedFields', 'resourceVersion', 'generation', 'creationTimestamp', 'uid', 'selfLink'];

/** The object as people would write it: no status, no server bookkeeping; plain JSON (a copy). */
export function withoutServerFields(o: KubernetesObject | undefined): Record<string, unknown> | undefined {
  if (!o) return undefined;
  const copy = JSON.parse(JSON.stringify(o)) as Record<string, unknown> & { metadata?: Record<string, unknown> };
  delete copy.status;
  if (copy.metadata) for (const key of volatileMetadata) delete copy.metadata[key];
  return copy;
}

function comparable(o: KubernetesObject | undefined): string {
  const copy = withoutServerFields(o);
  // An object without metadata compares as one with empty metadata.
  return copy ? canonical({ ...copy, metadata: copy.metadata ?? {} }) : '';
}

/** Never granted through a runbook, whatever the input says. */
const forbiddenVerbs = new Set(['*', 'escalate', 'bind', 'impersonate']);

/**
 * Refuses Role rules that grant what a runbook never grants; every message starts with `prefix`
 * (e.g. "objects[1]: "). With `roleObject` the rules are a Role object's as given (unknown shape):
 * apiGroups counts only when it is a list, and nonResourceURLs are refused; without it they are
 * ensureServiceAccountAccess's input, whose Role is built from apiGroups, resources, verbs and
 * resourceNames only.
 */
export function checkRoleRules(rules: readonly unknown[], prefix: string, options: { roleObject?: boolean } = {}): void {
  rules.forEach((rule, i) => {
    const r = rule as { verbs?: unknown; resources?: unknown; apiGroups?: unknown; nonResourceURLs?: unknown };
    if (!Array.isArray(r.verbs) || r.verbs.length === 0 || !Array.isArray(r.resources) || r.resources.length === 0) throw invalidInput(`${prefix}rules[${i}] needs verbs and resources`);
    for (const verb of r.verbs) if (forbiddenVerbs.has(verb as string)) throw refused(`${prefix}rules[${i}]: verb "${String(verb)}" is never granted by runbooks`);
    const wildcardGroup = options.roleObject ? Array.isArray(r.apiGroups) && r.apiGroups.includes('*') : ((r.apiGroups ?? []) as string[]).includes('*');
    if (r.resources.includes('*') || wildcardGroup) throw refused(`${prefix}rules[${i}]: wildcard resources or API groups are never granted by runbooks`);
    for (const resource of r.resources) {
      const problem = typeof resource === 'string' ? tunnelProblem(resource) : 'not a string';
      if (problem) throw refused(`${prefix}rules[${i}]: ${problem}; never granted by runbooks`);
    }
    if (options.roleObject && r.nonResourceURLs !== undefined) throw refused(`${prefix}rules[${i}]: nonResourceURLs are cluster-wide, not granted by a Role`);
  });
}

/** The lists a NamespaceSnapshot is made of (Secrets are reduced to names, types and keys). */
export interface NamespaceSnapshotLists {
  namespace: string;
  deployments: V1Deployment[];
  statefulSets: V1StatefulSet[];
  configMaps: V1ConfigMap[];
  secrets: V1Secret[];
  pvcs: V1PersistentVolumeClaim[];
  ingresses: V1Ingress[];
  services: V1Service[];
}

/** The snapshot of a namespace's listed objects, each kind sorted by name; Secret values are dropped here. */
export function namespaceSnapshotOf({ namespace, deployments, statefulSets, configMaps, secrets, pvcs, ingresses, services }: NamespaceSnapshotLists): NamespaceSnapshot {
  const byName = <T extends { name: string }>(a: T, b: T) => a.name.localeCompare(b.name);
  return {
    namespace,
    takenAt: new Date().toISOString(),
    deployments: deployments
      .map((d) => ({
        name: d.metadata?.name ?? '',
        replicas: d.spec?.replicas,
        revision: d.metadata?.annotations?.['deployment.kubernetes.io/revision'],
        containers: (d.spec?.template.spec?.containers ?? []).map((x) => ({ name: x.name, image: x.image, requests: x.resources?.requests, limits: x.resources?.limits })),
      }))
      .sort(byName),
    statefulSets: statefulSets.map((s) => ({ name: s.metadata?.name ?? '', replicas: s.spec?.replicas, images: (s.spec?.template.spec?.containers ?? []).map((x) => x.image ?? '') })).sort(byName),
    configMaps: configMaps
      .map((m) => ({
        name: m.metadata?.name ?? '',
        keys: [...Object.keys(m.data ?? {}), ...Object.keys(m.binaryData ?? {})].sort(),
        sha256: createHash('sha256')
          .update(canonical({ data: m.data, binaryData: m.binaryData }))
          .digest('hex'),
      }))
      .sort(byName),
    secrets: secrets.map((s) => ({ name: s.metadata?.name ?? '', type: s.type, keys: Object.keys(s.data ?? {}).sort() })).sort(byName),
    persistentVolumeClaims: pvcs
      .map((p) => ({
        name: p.metadata?.name ?? '',
        phase: p.status?.phase,
        storageClass: p.spec?.storageClassName,
        requested: p.spec?.resources?.requests?.storage,
        capacity: p.status?.capacity?.storage,
      }))
      .sort(byName),
    ingresses: ingresses
      .map((i) => ({
        name: i.metadata?.name ?? '',
        hosts: (i.spec?.rules ?? []).map((r) => r.host ?? '*'),
        tlsSecrets: (i.spec?.tls ?? []).map((t) => t.secretName ?? '').filter(Boolean),
        annotations: scrubForEvidence(withoutLastApplied(i.metadata?.annotations)),
      }))
      .sort(byName),
    services: services.map((s) => ({ name: s.metadata?.name ?? '', type: s.spec?.type, ports: (s.spec?.ports ?? []).map((p) => p.port) })).sort(byName),
  };
}

export function createKubernetesConfigActivities(scope: KubeScope) {
  async function apply(c: KubeClients, namespace: string, object: KubernetesObject, dryRun: boolean | undefined, force: boolean | undefined): Promise<ApplyResult> {
    const kind = object.kind!;
    const name = object.metadata!.name!;
    const what = `${kind}/${name}`;
    const resource = await kcall('discover', `kind ${kind} (${object.apiVersion})`, namespace, async () => {
      const found = await (c.objects as unknown as { resource(apiVersion: string, kind: string): Promise<{ namespaced: boolean } | undefined> }).resource(object.apiVersion!, kind);
      if (!found) throw failure('InvalidInput', `the cluster does not serve kind ${kind} in ${object.apiVersion}`);
      return found;
    });
    if (!resource.namespaced) throw refused(`${kind} is cluster-scoped: only namespaced objects in allowlisted namespaces are applied`);
    const before = await readOptional('get', what, namespace, () => c.objects.read({ apiVersion: object.apiVersion, kind, metadata: { name, namespace } }));
    const { body: after } = await kcall('apply', what, namespace, () => c.objects.patch(object, undefined, dryRunParam(dryRun), fieldManager, force === true ? true : undefined, applyPatch));
    const changed = comparable(before) !== comparable(after);
    return { kind, name, namespace, action: !before ? 'created' : changed ? 'configured' : 'unchanged', changed, dryRun: dryRun === true };
  }

  return {
    /** Sets and removes annotations of one object; returns the previous values of every key touched. */
    async setAnnotations(input: SetAnnotationsInput): Promise<Change<Record<string, string | null>>> {
      const { namespace, kind, name, dryRun } = input;
      const c = guarded(scope, namespace, { name });
      const target = annotatableKinds[kind];
      if (!target) throw invalidInput(`kind ${kind} is not supported (supported: ${Object.keys(annotatableKinds).join(', ')})`);
      const set = input.set ?? {};
      const remove = input.remove ?? [];
      const keys = [...Object.keys(set), ...remove];
      if (keys.length === 0) throw invalidInput('give annotations to set or remove');
      for (const key of keys) if (!annotationKey.test(key) || key.length > 316) throw invalidInput(`invalid annotation key "${key}"`);
      for (const [key, value] of Object.entries(set)) if (typeof value !== 'string') throw invalidInput(`annotation ${key}: value must be a string`);
      for (const key of remove) if (key in set) throw invalidInput(`annotation ${key} is both set and removed`);
      const ref = { apiVersion: target.apiVersion, kind, metadata: { name, namespace } };
      const what = `${target.resource}/${name}`;
      const { body: current } = await kcall('get', what, namespace, () => c.objects.read(ref));
      const pick = (o: KubernetesObject) => Object.fromEntries(keys.map((k) => [k, o.metadata?.annotations?.[k] ?? null])) as Record<string, string | null>;
      const before = pick(current);
      const wanted = Object.fromEntries([...Object.entries(set), ...remove.map((k) => [k, null] as const)]) as Record<string, string | null>;
      if (canonical(before) === canonical(wanted) && keys.every((k) => before[k] === wanted[k])) return change(before, before, dryRun, '');
      const { body: after } = await kcall('patch', what, namespace, () =>
        c.objects.patch({ ...ref, metadata: { ...ref.metadata, annotations: wanted as Record<string, string> } }, undefined, dryRunParam(dryRun), fieldManager, undefined, mergePatch),
      );
      return change(before, pick(after), dryRun, `annotations of ${what}`);
    },

    /** Server-side apply of one namespaced object with field manager runbook-automation. */
    async applyManifest(input: ApplyInput): Promise<ApplyResult> {
      const { namespace, dryRun, force } = input;
      const c = guarded(scope, namespace);
      let object: KubernetesObject;
      if (typeof input.manifest === 'string') {
        let docs: unknown[];
        try {
          docs = loadAllYaml(input.manifest).filter((d) => d != null);
        } catch (err) {
          throw invalidInput(`manifest is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
        }
        if (docs.length !== 1) throw invalidInput(`manifest must hold exactly one object (found ${docs.length})`);
        object = docs[0] as KubernetesObject;
      } else object = input.manifest as KubernetesObject;
      if (!object || typeof object !== 'object' || typeof object.apiVersion !== 'string' || typeof object.kind !== 'string' || typeof object.metadata?.name !== 'string') {
        throw invalidInput('manifest needs apiVersion, kind and metadata.name');
      }
      if (!/^[A-Z][A-Za-z0-9]*$/.test(object.kind) || !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(object.apiVersion)) throw invalidInput(`invalid apiVersion/kind ${object.apiVersion} ${object.kind}`);
      guarded(scope, namespace, { name: object.metadata.name });
      if (object.metadata.namespace !== undefined && object.metadata.namespace !== namespace) {
        throw refused(`manifest is for namespace ${object.metadata.namespace}, not ${namespace}`);
      }
      const body = { ...object, metadata: { ...object.metadata, namespace } };
      delete (body.metadata as Record<string, unknown>).managedFields;
      delete (body.metadata as Record<string, unknown>).resourceVersion;
      return apply(c, namespace, body, dryRun, force);
    },

    /** Creates or updates one key of a Secret. The value is never logged, returned or put in an error. */
    async setSecretKey(input: {
      namespace: string;
      name: string;
      key: string;
      value: string;
      dryRun?: boolean;
    }): Promise<{ name: string; key: string; created: boolean; changed: boolean; dryRun: boolean; keys: string[]; message: string }> {
      const { namespace, name, key, value, dryRun } = input;
      const encoded = typeof value === 'string' ? Buffer.from(value, 'utf8').toString('base64') : '';
      const scrub = (text: string) => (value ? text.split(value).join('[redacted]').split(encoded).join('[redacted]') : text);
      try {
        const c = guarded(scope, namespace, { name });
        if (typeof value !== 'string' || value === '') throw invalidInput('value must be a non-empty string');
        if (typeof key !== 'string' || !secretKey.test(key)) throw invalidInput('invalid key: expected letters, digits, "-", "_" and "."');
        const existing = await readOptional('get', `secrets/${name}`, namespace, () => c.core.readNamespacedSecret(name, namespace));
        if (!existing) {
          const { body } = await kcall('create', `secrets/${name}`, namespace, () =>
            c.core.createNamespacedSecret(
              namespace,
              { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'Opaque', data: { [key]: encoded } },
              undefined,
              dryRunParam(dryRun),
              fieldManager,
            ),
          );
          return {
            name,
            key,
            created: true,
            changed: true,
            dryRun: dryRun === true,
            keys: Object.keys(body.data ?? {}).sort(),
            message: `${dryRun ? 'would create' : 'created'} secrets/${name} with key ${key}`,
          };
        }
        if (existing.data?.[key] === encoded) return { name, key, created: false, changed: false, dryRun: dryRun === true, keys: Object.keys(existing.data ?? {}).sort(), message: 'no change' };
        if (existing.immutable) throw refused(`secrets/${name} in namespace ${namespace} is immutable`);
        const { body } = await kcall('patch', `secrets/${name}`, namespace, () =>
          c.core.patchNamespacedSecret(
            name,
            namespace,
            { metadata: { resourceVersion: existing.metadata?.resourceVersion }, data: { [key]: encoded } },
            undefined,
            dryRunParam(dryRun),
            fieldManager,
            undefined,
            undefined,
            mergePatch,
          ),
        );
        return {
          name,
          key,
          created: false,
          changed: true,
          dryRun: dryRun === true,
          keys: Object.keys(body.data ?? {}).sort(),
          message: `${dryRun ? 'would update' : 'updated'} key ${key} of secrets/${name}`,
        };
      } catch (err) {
        const f = err instanceof ApplicationFailure ? err : failure('Transient', `set key ${key} of secrets/${name} in namespace ${namespace}: ${(err as Error)?.message ?? 'error'}`);
        const message = scrub(f.message);
        if (message === f.message) throw f;
        throw ApplicationFailure.create({ type: f.type ?? 'Unclassified', message, nonRetryable: f.nonRetryable ?? undefined });
      }
    },

    /** ServiceAccount, Role and RoleBinding (role bound to the account), each created or updated idempotently. */
    async ensureServiceAccountAccess(input: AccessInput): Promise<{ changed: boolean; dryRun: boolean; objects: ApplyResult[] }> {
      const { namespace, serviceAccount, role, roleBinding, dryRun } = input;
      const c = guarded(scope, namespace, { serviceAccount, role, roleBinding });
      if (!Array.isArray(input.rules) || input.rules.length === 0) throw invalidInput('rules must list at least one rule');
      checkRoleRules(input.rules, '');
      const rules = input.rules.map((r) => ({ apiGroups: r.apiGroups ?? [''], resources: r.resources, verbs: r.verbs, ...(r.resourceNames ? { resourceNames: r.resourceNames } : {}) }));
      const objects = [
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccount, namespace } },
        { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: role, namespace }, rules },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: roleBinding, namespace },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role },
          subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace }],
        },
      ];
      const results: ApplyResult[] = [];
      for (const object of objects) {
        // A RoleBinding's roleRef cannot change: a binding to another role is a conflict to resolve by hand.
        results.push(await apply(c, namespace, object as KubernetesObject, dryRun, false));
      }
      return { changed: results.some((r) => r.changed), dryRun: dryRun === true, objects: results };
    },

    /** Workloads, ConfigMaps (keys and a digest), Secrets (names and keys, never values), PVCs, Ingress, Services. */
    async snapshotNamespaceConfig(input: { namespace: string }): Promise<NamespaceSnapshot> {
      const { namespace } = input;
      const c = guarded(scope, namespace);
      const [deployments, statefulSets, configMaps, secrets, pvcs, ingresses, services] = await Promise.all([
        kcall('list', 'deployments.apps', namespace, () => c.apps.listNamespacedDeployment(namespace)),
        kcall('list', 'statefulsets.apps', namespace, () => c.apps.listNamespacedStatefulSet(namespace)),
        kcall('list', 'configmaps', namespace, () => c.core.listNamespacedConfigMap(namespace)),
        kcall('list', 'secrets', namespace, () => c.core.listNamespacedSecret(namespace)),
        kcall('list', 'persistentvolumeclaims', namespace, () => c.core.listNamespacedPersistentVolumeClaim(namespace)),
        kcall('list', 'ingresses.networking.k8s.io', namespace, () => c.networking.listNamespacedIngress(namespace)),
        kcall('list', 'services', namespace, () => c.core.listNamespacedService(namespace)),
      ]);
      return namespaceSnapshotOf({
        namespace,
        deployments: deployments.body.items,
        statefulSets: statefulSets.body.items,
        configMaps: configMaps.body.items,
        secrets: secrets.body.items,
        pvcs: pvcs.body.items,
        ingresses: ingresses.body.items,
        services: services.body.items,
      });
    },
  };
}
