import { CoreV1Api, NetworkingV1Api, RbacAuthorizationV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { fieldChanges } from '../../activities/kubernetes-access';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { adminKubeConfig, kubernetesNamespace, scratchNamespace } from '../helpers/kube-cluster';
import { testbedEnv } from '../helpers/testbed';
import { failureOf } from '../helpers/failures';

/**
 * The security runbooks' activities against the test bed's real API server, in a scratch
 * namespace of their own (deleted at the end): server-side apply with a field-level dry-run diff,
 * the live comparison, and SubjectAccessReviews for a ServiceAccount.
 */
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const networking = kc.makeApiClient(NetworkingV1Api);
let scratch: Awaited<ReturnType<typeof scratchNamespace>>;
let ns: string;
let h: ActivityHarness;
let ro: ActivityHarness;

const jsonPatch = { headers: { 'Content-Type': 'application/json-patch+json' } };

beforeAll(async () => {
  scratch = await scratchNamespace(kc, 'kt-access');
  ns = scratch.name;
  h = activityHarness({ ALLOWED_NAMESPACES: `${kubernetesNamespace},${ns}` });
  // The seeded read-only account may only read short-drama-prod.
  ro = activityHarness({ KUBECONFIG: testbedEnv().TESTBED_KUBECONFIG_READONLY, ALLOWED_NAMESPACES: `${kubernetesNamespace},${ns}` });
});

afterAll(async () => {
  await h?.close();
  await ro?.close();
  await scratch?.remove();
});

const rules = [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }];
const objects = (): KubernetesObject[] => [
  { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reader' } },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'reader' }, rules } as KubernetesObject,
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'reader' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' },
    subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
  } as KubernetesObject,
];

describe('fieldChanges', () => {
  test('leaf by leaf: added, changed, removed; lists by index; odd keys quoted', () => {
    expect(fieldChanges({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 2] } })).toEqual([]);
    expect(fieldChanges(undefined, { spec: { ports: [{ port: 80 }] } })).toEqual([{ path: 'spec.ports[0].port', change: 'added', after: 80 }]);
    expect(fieldChanges({ rules: [{ verbs: ['get', 'list', 'delete'] }] }, { rules: [{ verbs: ['get', 'list'] }] })).toEqual([{ path: 'rules[0].verbs[2]', change: 'removed', before: 'delete' }]);
    expect(fieldChanges({ p: 6380, labels: { 'app.kubernetes.io/name': 'x' } }, { p: 6379, labels: {} })).toEqual([
      { path: 'labels["app.kubernetes.io/name"]', change: 'removed', before: 'x' },
      { path: 'p', change: 'changed', before: 6380, after: 6379 },
    ]);
    expect(fieldChanges({ podSelector: { matchLabels: { app: 'a' } } }, { podSelector: {} })).toEqual([{ path: 'podSelector.matchLabels.app', change: 'removed', before: 'a' }]);
    expect(fieldChanges({}, { podSelector: {} })).toEqual([{ path: 'podSelector', change: 'added', after: {} }]);
  });
});

describe('applySecurityObjects', () => {
  test('dry run lists what would be created and creates nothing; apply creates with our field manager; again: unchanged', async () => {
    const dry = await h.run('applySecurityObjects', { namespace: ns, objects: objects(), dryRun: true });
    expect(dry.changed).toBe(true);
    expect(dry.objects.map((o) => [o.kind, o.name, o.action])).toEqual([
      ['ServiceAccount', 'reader', 'created'],
      ['Role', 'reader', 'created'],
      ['RoleBinding', 'reader', 'created'],
    ]);
    expect(dry.objects[1]!.changes).toEqual([
      { path: 'apiVersion', change: 'added', after: 'rbac.authorization.k8s.io/v1' },
      { path: 'kind', change: 'added', after: 'Role' },
      { path: 'metadata.name', change: 'added', after: 'reader' },
      { path: 'metadata.namespace', change: 'added', after: ns },
      { path: 'rules[0].apiGroups[0]', change: 'added', after: '' },
      { path: 'rules[0].resources[0]', change: 'added', after: 'pods' },
      { path: 'rules[0].verbs[0]', change: 'added', after: 'get' },
      { path: 'rules[0].verbs[1]', change: 'added', after: 'list' },
    ]);
    await expect(core.readNamespacedServiceAccount('reader', ns)).rejects.toMatchObject({ statusCode: 404 });
    await expect(rbac.readNamespacedRole('reader', ns)).rejects.toMatchObject({ statusCode: 404 });

    const done = await h.run('applySecurityObjects', { namespace: ns, objects: objects() });
    expect(done).toMatchObject({ changed: true, dryRun: false });
    const role = (await rbac.readNamespacedRole('reader', ns)).body;
    expect(JSON.parse(JSON.stringify(role.rules))).toEqual(rules);
    expect(role.metadata?.managedFields?.map((m) => [m.manager, m.operation])).toEqual([['runbook-automation', 'Apply']]);

    const again = await h.run('applySecurityObjects', { namespace: ns, objects: objects() });
    expect(again.changed).toBe(false);
    expect(again.objects.map((o) => [o.action, o.changes])).toEqual([
      ['unchanged', []],
      ['unchanged', []],
      ['unchanged', []],
    ]);
    expect((await rbac.readNamespacedRole('reader', ns)).body.metadata?.resourceVersion).toBe(role.metadata?.resourceVersion);
  });

  test('a hand edit (another manager) is shown field by field and taken back by the forced apply', async () => {
    await rbac.patchNamespacedRole('reader', ns, [{ op: 'add', path: '/rules/0/verbs/-', value: 'delete' }], undefined, undefined, 'kubectl-edit', undefined, undefined, jsonPatch);
    const dry = await h.run('applySecurityObjects', { namespace: ns, objects: objects(), dryRun: true });
    expect(dry.objects.map((o) => [o.name, o.kind, o.action, o.changes])).toEqual([
      ['reader', 'ServiceAccount', 'unchanged', []],
      ['reader', 'Role', 'configured', [{ path: 'rules[0].verbs[2]', change: 'removed', before: 'delete' }]],
      ['reader', 'RoleBinding', 'unchanged', []],
    ]);
    expect((await rbac.readNamespacedRole('reader', ns)).body.rules?.[0]?.verbs).toEqual(['get', 'list', 'delete']);
    const fixed = await h.run('applySecurityObjects', { namespace: ns, objects: objects() });
    expect(fixed.objects[1]).toMatchObject({ action: 'configured' });
    expect((await rbac.readNamespacedRole('reader', ns)).body.rules?.[0]?.verbs).toEqual(['get', 'list']);
  });

  test('refusals: other kinds, ClusterRoles, wildcards and dangerous verbs, a changed roleRef, kube-system, an account without rights', async () => {
    const [sa, role, binding] = objects() as [KubernetesObject, KubernetesObject & { rules: unknown }, KubernetesObject & { roleRef: unknown }];
    const refusal = async (object: KubernetesObject, namespace = ns) => {
      const f = await failureOf(h.run('applySecurityObjects', { namespace, objects: [object] }));
      return [f.type, f.message];
    };
    expect(await refusal({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } })).toEqual([
      'Refused',
      'objects[0]: kind ConfigMap is not managed here (only ServiceAccount, Role, RoleBinding, NetworkPolicy)',
    ]);
    expect(await refusal({ ...binding, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' } } as KubernetesObject)).toEqual([
      'Refused',
      'objects[0]: RoleBinding reader may only bind a Role (rbac.authorization.k8s.io) of its namespace',
    ]);
    expect(await refusal({ ...role, rules: [{ apiGroups: [''], resources: ['*'], verbs: ['get'] }] } as KubernetesObject)).toEqual([
      'Refused',
      'objects[0]: rules[0]: wildcard resources or API groups are never granted by runbooks',
    ]);
    expect(await refusal({ ...role, rules: [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'], verbs: ['escalate'] }] } as KubernetesObject)).toEqual([
      'Refused',
      'objects[0]: rules[0]: verb "escalate" is never granted by runbooks',
    ]);
    expect(await refusal({ ...binding, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'other' } } as KubernetesObject)).toEqual([
      'Refused',
      `RoleBinding reader in namespace ${ns} binds {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"reader"}, not {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"other"}; a roleRef cannot change: delete the binding by hand or choose another roleBinding name`,
    ]);
    expect(await refusal(sa, 'kube-system')).toEqual(['Refused', 'namespace kube-system is never touched by runbooks']);
    expect(await refusal({ ...sa, metadata: { name: 'reader', namespace: 'default' } })).toEqual(['Refused', `objects[0]: ServiceAccount/reader is for namespace default, not ${ns}`]);
    expect((await failureOf(ro.run('applySecurityObjects', { namespace: ns, objects: [sa], dryRun: true }))).type).toBe('Forbidden');
  });

  test('attack: a Role granting exec, attach, port-forward, proxy or a wildcard over them is refused for every verb, and nothing is created', async () => {
    const role = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'sneaky-exec' } } as KubernetesObject;
    const attempts: Array<[string, string]> = [
      ['pods/exec', 'get'],
      ['pods/attach', 'get'],
      ['pods/portforward', 'get'],
      ['pods/proxy', 'get'],
      ['services/proxy', 'list'],
      ['nodes/proxy', 'get'],
      ['pods/ephemeralcontainers', 'get'],
      ['*/proxy', 'get'],
      ['pods/*', 'watch'],
      ['pods/exec', 'create'],
    ];
    for (const [resource, verb] of attempts) {
      const f = await failureOf(
        h.run('applySecurityObjects', { namespace: ns, objects: [{ ...role, rules: [{ apiGroups: [''], resources: ['pods', resource], verbs: [verb] }] } as KubernetesObject], dryRun: false }),
      );
      expect([resource, f.type, f.nonRetryable]).toEqual([resource, 'Refused', true]);
      expect(f.message).toContain(`objects[0]: rules[0]: resource "${resource}" `);
      expect(f.message).toMatch(
        /(runs commands in or tunnels to workloads \(exec, attach, port-forward and proxy use GET too\)|includes pods\/exec, pods\/attach, pods\/portforward, pods\/proxy, pods\/ephemeralcontainers); never granted by runbooks$/,
      );
    }
    await expect(rbac.readNamespacedRole('sneaky-exec', ns)).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('compareLiveObjects and checkServiceAccountAccess', () => {
  const policy = (port: number): KubernetesObject =>
    ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'np' },
      spec: { podSelector: { matchLabels: { app: 'a' } }, policyTypes: ['Ingress'], ingress: [{ ports: [{ protocol: 'TCP', port }] }] },
    }) as KubernetesObject;

  test('the live object against the desired one: missing, equal, a field that differs', async () => {
    expect(await h.run('compareLiveObjects', { namespace: ns, objects: [policy(80)] })).toEqual({
      matches: false,
      objects: [{ kind: 'NetworkPolicy', name: 'np', exists: false, matches: false, differences: [] }],
    });
    await h.run('applySecurityObjects', { namespace: ns, objects: [policy(80)] });
    expect(await h.run('compareLiveObjects', { namespace: ns, objects: [policy(80)] })).toEqual({
      matches: true,
      objects: [{ kind: 'NetworkPolicy', name: 'np', exists: true, matches: true, differences: [] }],
    });
    await networking.patchNamespacedNetworkPolicy('np', ns, [{ op: 'add', path: '/spec/policyTypes/-', value: 'Egress' }], undefined, undefined, 'kubectl-edit', undefined, undefined, jsonPatch);
    expect((await h.run('compareLiveObjects', { namespace: ns, objects: [policy(81)] })).objects[0]!.differences).toEqual([
      { path: 'spec.ingress[0].ports[0].port', change: 'changed', before: 80, after: 81 },
      { path: 'spec.policyTypes[1]', change: 'removed', before: 'Egress' },
    ]);
  });

  test("the authorizer's answer for the ServiceAccount: its Role's verbs allowed, anything else denied", async () => {
    const { user, results } = await h.run('checkServiceAccountAccess', {
      namespace: ns,
      serviceAccount: 'reader',
      checks: [
        { verb: 'list', group: '', resource: 'pods' },
        { verb: 'delete', group: '', resource: 'pods' },
        { verb: 'get', group: '', resource: 'pods', subresource: 'log' },
        { verb: 'list', group: 'apps', resource: 'deployments' },
      ],
    });
    expect(user).toBe(`system:serviceaccount:${ns}:reader`);
    expect(results.map((r) => [r.verb, r.resource, r.allowed])).toEqual([
      ['list', 'pods', true],
      ['delete', 'pods', false],
      ['get', 'pods', false],
      ['list', 'deployments', false],
    ]);
    expect(results[0]!.reason).toContain('reader');
    // An account nothing is bound to (it need not exist): denied.
    const other = await h.run('checkServiceAccountAccess', { namespace: ns, serviceAccount: 'nobody', checks: [{ verb: 'list', group: '', resource: 'pods' }] });
    expect(other.results[0]!.allowed).toBe(false);
    expect((await failureOf(h.run('checkServiceAccountAccess', { namespace: 'kube-system', serviceAccount: 'x', checks: [{ verb: 'list', group: '', resource: 'pods' }] }))).type).toBe('Refused');
    expect((await failureOf(h.run('checkServiceAccountAccess', { namespace: ns, serviceAccount: 'reader', checks: [{ verb: 'LIST *', group: '', resource: 'pods' }] }))).type).toBe('InvalidInput');
  });
});
