/** One permission a runbook needs, as a SelfSubjectAccessReview asks it. */
export interface RequiredPermission {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  /** Cluster-scoped resources have no namespace. */
  clusterScoped?: boolean;
  usedBy: string;
}

/** Every Kubernetes verb and resource the catalog's runbooks use. */
export const requiredPermissions: RequiredPermission[] = [
  { verb: 'list', group: '', resource: 'pods', usedBy: 'podCrashLoop, dailyHealthCheck' },
  { verb: 'get', group: '', resource: 'pods', subresource: 'log', usedBy: 'podCrashLoop, dailyHealthCheck' },
  { verb: 'create', group: '', resource: 'pods', subresource: 'exec', usedBy: 'diskPressure, dailyHealthCheck (df -h)' },
  // exec over WebSocket is an HTTP GET: the API server asks for get as well as create.
  { verb: 'get', group: '', resource: 'pods', subresource: 'exec', usedBy: 'diskPressure, dailyHealthCheck (df -h, over WebSocket)' },
  { verb: 'list', group: '', resource: 'events', usedBy: 'podCrashLoop, postIncidentReview' },
  { verb: 'list', group: '', resource: 'services', usedBy: 'dailyHealthCheck, monthlyReview' },
  { verb: 'list', group: '', resource: 'endpoints', usedBy: 'dailyHealthCheck, monthlyReview' },
  { verb: 'list', group: '', resource: 'configmaps', usedBy: 'postIncidentReview' },
  { verb: 'list', group: '', resource: 'secrets', usedBy: 'postIncidentReview, dailyHealthCheck (names and keys only)' },
  { verb: 'list', group: '', resource: 'persistentvolumeclaims', usedBy: 'dailyHealthCheck, monthlyReview, diskPressure' },
  { verb: 'get', group: '', resource: 'secrets', usedBy: 'rotateDatabasePassword (the staged password, read inside the activity)' },
  { verb: 'patch', group: '', resource: 'secrets', usedBy: 'rotateDatabasePassword' },
  { verb: 'create', group: '', resource: 'secrets', usedBy: 'rotateDatabasePassword (a Secret not there yet)' },
  { verb: 'patch', group: '', resource: 'persistentvolumeclaims', usedBy: 'diskPressure' },
  { verb: 'create', group: '', resource: 'serviceaccounts', usedBy: 'provisionReadonlyAccess' },
  { verb: 'patch', group: '', resource: 'serviceaccounts', usedBy: 'provisionReadonlyAccess (server-side apply)' },
  { verb: 'get', group: 'apps', resource: 'deployments', usedBy: 'all fault runbooks' },
  { verb: 'get', group: 'apps', resource: 'deployments', subresource: 'scale', usedBy: 'emergencyScale, dbConnectionExhaustion (the replicas before scaling)' },
  { verb: 'get', group: '', resource: 'pods', usedBy: 'podCrashLoop (logs of a named pod), diskPressure, dailyHealthCheck (exec in a named pod), provisionReadonlyAccess (grants it)' },
  { verb: 'get', group: 'networking.k8s.io', resource: 'ingresses', usedBy: 'trafficControl, certificateExpiry (one Ingress by name)' },
  // Kubernetes lets an account grant only what it holds itself: the read-only Role's default rules.
  { verb: 'watch', group: '', resource: 'pods', usedBy: 'provisionReadonlyAccess (grants it)' },
  { verb: 'get', group: '', resource: 'services', usedBy: 'provisionReadonlyAccess (grants it)' },
  { verb: 'watch', group: '', resource: 'services', usedBy: 'provisionReadonlyAccess (grants it)' },
  { verb: 'watch', group: 'apps', resource: 'deployments', usedBy: 'provisionReadonlyAccess (grants it)' },
  { verb: 'list', group: 'apps', resource: 'deployments', usedBy: 'monthlyReview' },
  { verb: 'patch', group: 'apps', resource: 'deployments', usedBy: 'podCrashLoop, rollbackDeployment, emergencyScale' },
  { verb: 'patch', group: 'apps', resource: 'deployments', subresource: 'scale', usedBy: 'emergencyScale, dbConnectionExhaustion (restart of a ReadWriteOnce database by scaling to 0 and back)' },
  { verb: 'get', group: '', resource: 'persistentvolumeclaims', usedBy: 'dbConnectionExhaustion, rotateDatabasePassword (a restart reads the access modes of the volumes)' },
  { verb: 'list', group: 'apps', resource: 'replicasets', usedBy: 'rollbackDeployment, monthlyReview' },
  { verb: 'list', group: 'apps', resource: 'statefulsets', usedBy: 'postIncidentReview (configuration snapshot)' },
  { verb: 'list', group: 'apps', resource: 'daemonsets', usedBy: 'postIncidentReview (configuration snapshot)' },
  { verb: 'list', group: 'batch', resource: 'jobs', usedBy: 'postIncidentReview (configuration snapshot)' },
  { verb: 'list', group: 'batch', resource: 'cronjobs', usedBy: 'postIncidentReview (configuration snapshot)' },
  { verb: 'list', group: 'networking.k8s.io', resource: 'ingresses', usedBy: 'dailyHealthCheck, postIncidentReview, trafficControl' },
  { verb: 'list', group: 'autoscaling', resource: 'horizontalpodautoscalers', usedBy: 'dailyHealthCheck, emergencyScale' },
  { verb: 'get', group: 'autoscaling', resource: 'horizontalpodautoscalers', usedBy: 'emergencyScale' },
  { verb: 'patch', group: 'autoscaling', resource: 'horizontalpodautoscalers', usedBy: "emergencyScale (the HPA's bounds)" },
  { verb: 'patch', group: 'networking.k8s.io', resource: 'ingresses', usedBy: 'trafficControl, certificateExpiry' },
  { verb: 'patch', group: 'networking.k8s.io', resource: 'networkpolicies', usedBy: 'applyNetworkPolicy' },
  { verb: 'create', group: 'networking.k8s.io', resource: 'networkpolicies', usedBy: 'applyNetworkPolicy (server-side apply of a policy not there yet)' },
  { verb: 'get', group: 'cert-manager.io', resource: 'certificates', usedBy: 'certificateExpiry, weeklyReview' },
  { verb: 'delete', group: 'cert-manager.io', resource: 'certificates', usedBy: 'certificateExpiry' },
  { verb: 'get', group: 'bitnami.com', resource: 'sealedsecrets', usedBy: 'rotateDatabasePassword (a Secret owned by a SealedSecret, 使用Sealed Secrets; its unseal waited for)' },
  { verb: 'patch', group: 'bitnami.com', resource: 'sealedsecrets', usedBy: 'rotateDatabasePassword (sealed values into the SealedSecret, never the Secret it owns)' },
  { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'roles', usedBy: 'provisionReadonlyAccess' },
  { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'rolebindings', usedBy: 'provisionReadonlyAccess' },
  { verb: 'patch', group: 'rbac.authorization.k8s.io', resource: 'roles', usedBy: 'provisionReadonlyAccess (server-side apply)' },
  { verb: 'patch', group: 'rbac.authorization.k8s.io', resource: 'rolebindings', usedBy: 'provisionReadonlyAccess (server-side apply)' },
  { verb: 'get', group: '', resource: 'serviceaccounts', usedBy: 'provisionReadonlyAccess (dry-run diff)' },
  { verb: 'get', group: 'rbac.authorization.k8s.io', resource: 'roles', usedBy: 'provisionReadonlyAccess (dry-run diff)' },
  { verb: 'get', group: 'rbac.authorization.k8s.io', resource: 'rolebindings', usedBy: 'provisionReadonlyAccess (dry-run diff)' },
  { verb: 'get', group: 'networking.k8s.io', resource: 'networkpolicies', usedBy: 'applyNetworkPolicy (dry-run diff, verify)' },
  { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews', clusterScoped: true, usedBy: 'provisionReadonlyAccess (access check)' },
  { verb: 'list', group: 'metrics.k8s.io', resource: 'pods', usedBy: 'dailyHealthCheck, podCrashLoop' },
  { verb: 'get', group: 'storage.k8s.io', resource: 'storageclasses', clusterScoped: true, usedBy: 'diskPressure' },
  { verb: 'list', group: 'metrics.k8s.io', resource: 'nodes', clusterScoped: true, usedBy: 'dailyHealthCheck' },
  { verb: 'list', group: 'storage.k8s.io', resource: 'storageclasses', clusterScoped: true, usedBy: 'dailyHealthCheck' },
  { verb: 'list', group: '', resource: 'nodes', clusterScoped: true, usedBy: 'dailyHealthCheck (allocatable beside node usage)' },
];

export function describePermission(permission: RequiredPermission, namespace?: string): string {
  const resource = `${permission.resource}${permission.subresource ? `/${permission.subresource}` : ''}${permission.group ? `.${permission.group}` : ''}`;
  return `${permission.verb} ${resource}${namespace ? ` in ${namespace}` : ''}`;
}

/** One RBAC rule, as a Role or ClusterRole holds it. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

const rbacResource = (permission: RequiredPermission) => (permission.subresource ? `${permission.resource}/${permission.subresource}` : permission.resource);

/**
 * The worker's RBAC, derived from `requiredPermissions` (so preflight and the manifests cannot
 * drift): one rule per resource with the verbs the runbooks use on it; namespaced rules go into the
 * Role bound in each allowed namespace, cluster-scoped ones into the ClusterRole.
 */
export function workerRbacRules(permissions: RequiredPermission[] = requiredPermissions): { namespaced: PolicyRule[]; clusterScoped: PolicyRule[] } {
  const rules = new Map<string, PolicyRule & { clusterScoped: boolean }>();
  for (const permission of permissions) {
    const key = `${permission.group}/${rbacResource(permission)}`;
    const rule = rules.get(key) ?? { apiGroups: [permission.group], resources: [rbacResource(permission)], verbs: [], clusterScoped: permission.clusterScoped === true };
    if (!rule.verbs.includes(permission.verb)) rule.verbs.push(permission.verb);
    rules.set(key, rule);
  }
  const sorted = [...rules.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, rule]) => rule);
  const plain = ({ apiGroups, resources, verbs }: PolicyRule): PolicyRule => ({ apiGroups, resources, verbs: [...verbs].sort() });
  return { namespaced: sorted.filter((r) => !r.clusterScoped).map(plain), clusterScoped: sorted.filter((r) => r.clusterScoped).map(plain) };
}

/** The permissions of the table one rule grants (what preflight reports missing when the rule is gone). */
export function permissionsGrantedBy(rule: PolicyRule, permissions: RequiredPermission[] = requiredPermissions): RequiredPermission[] {
  return permissions.filter((p) => rule.apiGroups.includes(p.group) && rule.resources.includes(rbacResource(p)) && rule.verbs.includes(p.verb));
}

/** Verbs that let an account give itself or others more than it holds. */
const escalatingVerbs = ['escalate', 'bind', 'impersonate'];

/** A rule as SelfSubjectRulesReview reports it. */
export interface ReviewedRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

/**
 * Rules every authenticated account holds (system:basic-user and friends: asking the authorizer
 * about oneself), and the cluster-scoped ones the runbooks need: a rules review lists them in every
 * namespace, but they grant nothing inside one.
 */
const harmlessEverywhere = new Set([
  'selfsubjectaccessreviews',
  'selfsubjectrulesreviews',
  'selfsubjectreviews',
  'clustertrustbundles',
  ...requiredPermissions.filter((p) => p.clusterScoped).map(rbacResource),
]);

/**
 * What an account holds beyond what the runbooks use, as sentences: wildcards, escalating verbs,
 * anything in a namespace the runbooks never touch (kube-system). Empty when there is nothing to
 * warn about.
 */
export function excessPrivileges(rules: ReviewedRule[], namespace: string, runbookNamespace: boolean): string[] {
  const problems: string[] = [];
  for (const rule of rules) {
    const resources = rule.resources ?? [];
    if (resources.length > 0 && resources.every((r) => harmlessEverywhere.has(r)) && !rule.verbs.some((v) => v === '*' || escalatingVerbs.includes(v))) continue;
    const qualified = resources.flatMap((resource) => (rule.apiGroups ?? ['']).map((group) => (group ? `${resource}.${group}` : resource)));
    const text = `${rule.verbs.join(',')} ${qualified.join(',')}`;
    if (rule.verbs.includes('*') || resources.includes('*') || (rule.apiGroups ?? []).includes('*')) {
      problems.push(`wildcard in ${namespace}: ${text}${rule.verbs.includes('*') && resources.includes('*') ? ' (cluster-admin or the like)' : ''}`);
    } else if (rule.verbs.some((v) => escalatingVerbs.includes(v))) {
      problems.push(`${rule.verbs.filter((v) => escalatingVerbs.includes(v)).join('/')} in ${namespace}: ${text}`);
    } else if (!runbookNamespace) {
      problems.push(`access in ${namespace}, which no runbook touches: ${text}`);
    }
  }
  return problems;
}
