import { AuthorizationV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { invalidInput, refused } from './errors';
import { applyPatch, canonical, dryRunParam, fieldManager, guarded, kcall, readOptional, type KubeClients, type KubeScope } from './kubernetes-common';
import { checkRoleRules, withoutServerFields } from './kubernetes-config';

/**
 * The security runbooks' objects (RBAC配置, 网络策略): server-side applied with our field manager,
 * planned by a dry run whose result is compared field by field with the live object, checked
 * against the live object afterwards, and the access a ServiceAccount really has, asked of the
 * API server's authorizer.
 */

/** The kinds these activities manage, by the apiVersion they must come in. */
const securityKinds: Record<string, string> = {
  ServiceAccount: 'v1',
  Role: 'rbac.authorization.k8s.io/v1',
  RoleBinding: 'rbac.authorization.k8s.io/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
};

/** One field that differs; before is the live value, after the desired (or dry-run) one. */
export interface FieldChange {
  /** e.g. rules[0].verbs[3] or metadata.labels["app.kubernetes.io/name"] */
  path: string;
  change: 'added' | 'changed' | 'removed';
  before?: unknown;
  after?: unknown;
}

export interface SecurityObjectResult {
  kind: string;
  name: string;
  /** What kubectl apply would print. */
  action: 'created' | 'configured' | 'unchanged';
  /** Live object vs the object after the apply (both without status and server bookkeeping). */
  changes: FieldChange[];
}

export interface ApplySecurityObjectsInput {
  namespace: string;
  /** In order (a RoleBinding after its Role); each of kind ServiceAccount, Role, RoleBinding or NetworkPolicy. */
  objects: KubernetesObject[];
  dryRun?: boolean;
}

export interface ApplySecurityObjectsResult {
  changed: boolean;
  dryRun: boolean;
  objects: SecurityObjectResult[];
}

export interface LiveComparison {
  kind: string;
  name: string;
  exists: boolean;
  /** Exists and every desired field (and nothing more in those fields) is live. */
  matches: boolean;
  differences: FieldChange[];
}

export interface AccessCheck {
  verb: string;
  /** "" for the core group. */
  group: string;
  resource: string;
  subresource?: string;
}

export interface AccessCheckResult extends AccessCheck {
  allowed: boolean;
  /** The authorizer's reason, e.g. which binding allowed it. */
  reason?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const absent = (v: unknown) => v === undefined || v === null;
const keyPath = (path: string, key: string) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`);

/**
 * Field-level differences, leaf by leaf (lists by index: the lists these kinds hold are atomic,
 * replaced whole by an apply). An added or removed object is listed as its leaves.
 */
export function fieldChanges(before: unknown, after: unknown, path = ''): FieldChange[] {
  if (canonical(before) === canonical(after)) return [];
  const container = (v: unknown) => (isRecord(v) && Object.keys(v).length > 0) || (Array.isArray(v) && v.length > 0);
  if (absent(before) && container(after)) return fieldChanges(Array.isArray(after) ? [] : {}, after, path);
  if (absent(after) && container(before)) return fieldChanges(before, Array.isArray(before) ? [] : {}, path);
  if (isRecord(before) && isRecord(after) && (container(before) || container(after))) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => fieldChanges(before[key], after[key], keyPath(path, key)));
  }
  if (Array.isArray(before) && Array.isArray(after) && (container(before) || container(after))) {
    return Array.from({ length: Math.max(before.length, after.length) }, (_, i) => fieldChanges(before[i], after[i], `${path}[${i}]`)).flat();
  }
  if (absent(before)) return [{ path, change: 'added', after }];
  if (absent(after)) return [{ path, change: 'removed', before }];
  return [{ path, change: 'changed', before, after }];
}

/** Checks one desired object: a kind we manage, in this namespace, granting nothing dangerous. */
function checkObject(scope: KubeScope, namespace: string, object: KubernetesObject, index: number): { kind: string; name: string } {
  const what = `objects[${index}]`;
  if (!isRecord(object as unknown) || typeof object.kind !== 'string' || typeof object.metadata?.name !== 'string') throw invalidInput(`${what} needs kind and metadata.name`);
  const { kind } = object;
  const name = object.metadata.name;
  const apiVersion = securityKinds[kind];
  if (!apiVersion) throw refused(`${what}: kind ${kind} is not managed here (only ${Object.keys(securityKinds).join(', ')})`);
  if (object.apiVersion !== apiVersion) throw invalidInput(`${what}: ${kind} must be apiVersion ${apiVersion}, not ${String(object.apiVersion)}`);
  guarded(scope, namespace, { [`${kind} name`]: name });
  if (object.metadata.namespace !== undefined && object.metadata.namespace !== namespace) throw refused(`${what}: ${kind}/${name} is for namespace ${object.metadata.namespace}, not ${namespace}`);
  const body = object as unknown as Record<string, unknown>;
  if (kind === 'Role') {
    const rules = body.rules;
    if (!Array.isArray(rules) || rules.length === 0) throw invalidInput(`${what}: Role ${name} needs at least one rule`);
    checkRoleRules(rules, `${what}: `, { roleObject: true });
  }
  if (kind === 'RoleBinding') {
    const roleRef = body.roleRef as { kind?: unknown; apiGroup?: unknown } | undefined;
    // A ClusterRole (such as admin) could grant anything: only a Role of this namespace is bound.
    if (roleRef?.kind !== 'Role' || roleRef.apiGroup !== 'rbac.authorization.k8s.io') throw refused(`${what}: RoleBinding ${name} may only bind a Role (rbac.authorization.k8s.io) of its namespace`);
    const subjects = body.subjects;
    if (!Array.isArray(subjects) || subjects.length === 0) throw invalidInput(`${what}: RoleBinding ${name} needs subjects`);
    for (const s of subjects as Array<{ kind?: unknown; namespace?: unknown }>) {
      if (s.kind !== 'ServiceAccount' || (s.namespace !== undefined && s.namespace !== namespace))
        throw refused(`${what}: RoleBinding ${name} may only bind ServiceAccounts of namespace ${namespace}`);
    }
  }
  return { kind, name };
}

/** The objects of an input: 1 to 10, each checked (see checkObject). */
function checkObjects(scope: KubeScope, namespace: string, objects: KubernetesObject[]): Array<{ kind: string; name: string }> {
  if (!Array.isArray(objects) || objects.length === 0 || objects.length > 10) throw invalidInput('objects must list 1 to 10 objects');
  return objects.map((object, i) => checkObject(scope, namespace, object, i));
}

const readLive = (c: KubeClients, namespace: string, object: KubernetesObject, kind: string, name: string) =>
  readOptional('get', `${kind}/${name}`, namespace, () => c.objects.read({ apiVersion: object.apiVersion, kind, metadata: { name, namespace } }));

export function createKubernetesAccessActivities(scope: KubeScope) {
  return {
    /**
     * Server-side apply (field manager runbook-automation) of ServiceAccounts, Roles, RoleBindings
     * and NetworkPolicies, forced: a field someone edited by hand is taken back, which is the
     * point of these runbooks and what people approved from the dry run's field changes.
     */
    async applySecurityObjects(input: ApplySecurityObjectsInput): Promise<ApplySecurityObjectsResult> {
      const { namespace, dryRun } = input;
      const c = guarded(scope, namespace);
      const checked = checkObjects(scope, namespace, input.objects);
      const results: SecurityObjectResult[] = [];
      /** Roles this dry run would create: none exists yet for the API to check a binding of it against. */
      const plannedRoles = new Set<string>();
      for (const [i, object] of input.objects.entries()) {
        const { kind, name } = checked[i]!;
        const before = await readLive(c, namespace, object, kind, name);
        if (dryRun && kind === 'Role' && !before) plannedRoles.add(name);
        if (kind === 'RoleBinding' && before) {
          // roleRef is immutable: the API would reject the apply; say what to do instead.
          const live = (before as unknown as { roleRef?: unknown }).roleRef;
          const wanted = (object as unknown as { roleRef?: unknown }).roleRef;
          if (canonical(live) !== canonical(wanted)) {
            throw refused(
              `RoleBinding ${name} in namespace ${namespace} binds ${canonical(live)}, not ${canonical(wanted)}; a roleRef cannot change: delete the binding by hand or choose another roleBinding name`,
            );
          }
        }
        const body = { ...object, metadata: { ...object.metadata, namespace } };
        // Binding a Role takes `bind` on it or holding all its rights, which Kubernetes checks on the live
        // Role even in a dry run; the worker has no `bind`, so a binding of a Role planned in this same
        // dry run is planned as written (the API adds nothing to a RoleBinding but metadata).
        const boundRole = kind === 'RoleBinding' ? (object as unknown as { roleRef?: { name?: string } }).roleRef?.name : undefined;
        const after =
          !before && boundRole !== undefined && plannedRoles.has(boundRole)
            ? (body as KubernetesObject)
            : (await kcall('apply', `${kind}/${name}`, namespace, () => c.objects.patch(body, undefined, dryRunParam(dryRun), fieldManager, true, applyPatch))).body;
        const changes = fieldChanges(withoutServerFields(before), withoutServerFields(after));
        results.push({ kind, name, action: !before ? 'created' : changes.length > 0 ? 'configured' : 'unchanged', changes });
      }
      return { changed: results.some((r) => r.action !== 'unchanged'), dryRun: dryRun === true, objects: results };
    },

    /**
     * Each desired object against the live one: the fields the desired object sets (besides
     * metadata) must be live exactly, and its labels and annotations present. Changes nothing.
     */
    async compareLiveObjects(input: { namespace: string; objects: KubernetesObject[] }): Promise<{ matches: boolean; objects: LiveComparison[] }> {
      const { namespace } = input;
      const c = guarded(scope, namespace);
      const checked = checkObjects(scope, namespace, input.objects);
      const objects: LiveComparison[] = [];
      for (const [i, object] of input.objects.entries()) {
        const { kind, name } = checked[i]!;
        const live = withoutServerFields(await readLive(c, namespace, object, kind, name));
        if (!live) {
          objects.push({ kind, name, exists: false, matches: false, differences: [] });
          continue;
        }
        const desired = withoutServerFields(object)!;
        const differences: FieldChange[] = [];
        for (const key of Object.keys(desired).sort()) {
          if (key === 'apiVersion' || key === 'kind' || key === 'metadata') continue;
          differences.push(...fieldChanges(live[key], desired[key], key));
        }
        const liveMeta = (live.metadata ?? {}) as Record<string, Record<string, string> | undefined>;
        const desiredMeta = (desired.metadata ?? {}) as Record<string, Record<string, string> | undefined>;
        for (const field of ['labels', 'annotations']) {
          for (const [k, v] of Object.entries(desiredMeta[field] ?? {}).sort()) {
            const now = liveMeta[field]?.[k];
            if (now !== v)
              differences.push(
                now === undefined ? { path: keyPath(`metadata.${field}`, k), change: 'added', after: v } : { path: keyPath(`metadata.${field}`, k), change: 'changed', before: now, after: v },
              );
          }
        }
        objects.push({ kind, name, exists: true, matches: differences.length === 0, differences });
      }
      return { matches: objects.every((o) => o.matches), objects };
    },

    /**
     * What a ServiceAccount may do in its namespace, asked of the authorizer (SubjectAccessReview)
     * with the groups its tokens carry, so grants to those groups count too. Changes nothing.
     */
    async checkServiceAccountAccess(input: { namespace: string; serviceAccount: string; checks: AccessCheck[] }): Promise<{ user: string; results: AccessCheckResult[] }> {
      const { namespace, serviceAccount } = input;
      const c = guarded(scope, namespace, { serviceAccount });
      if (!Array.isArray(input.checks) || input.checks.length === 0 || input.checks.length > 100) throw invalidInput('checks must list 1 to 100 checks');
      for (const [i, check] of input.checks.entries()) {
        const word = /^[a-z][a-z0-9.-]*$/;
        if (
          !word.test(check.verb ?? '') ||
          !word.test(check.resource ?? '') ||
          (check.group !== '' && !word.test(check.group ?? '')) ||
          (check.subresource !== undefined && !word.test(check.subresource))
        ) {
          throw invalidInput(`checks[${i}] needs a verb, a resource and a group ("" for core), lowercase`);
        }
      }
      const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
      const authorization = c.kube.makeApiClient(AuthorizationV1Api);
      const results = await Promise.all(
        input.checks.map(async (check): Promise<AccessCheckResult> => {
          const { body } = await kcall('create', 'subjectaccessreviews.authorization.k8s.io', undefined, () =>
            authorization.createSubjectAccessReview({
              apiVersion: 'authorization.k8s.io/v1',
              kind: 'SubjectAccessReview',
              spec: {
                user,
                groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
                resourceAttributes: { namespace, verb: check.verb, group: check.group, resource: check.resource, ...(check.subresource ? { subresource: check.subresource } : {}) },
              },
            }),
          );
          const reason = body.status?.reason || body.status?.evaluationError;
          return { ...check, allowed: body.status?.allowed === true, ...(reason ? { reason } : {}) };
        }),
      );
      return { user, results };
    },
  };
}
