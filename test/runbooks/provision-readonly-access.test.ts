import { randomUUID } from 'node:crypto';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { WorkflowFailedError } from '@temporalio/client';
import type { ProvisionReadonlyAccessResult } from '../../workflows/provision-readonly-access';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig, kubernetesNamespace, scratchNamespace, statusOf } from '../helpers/kube-cluster';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

/**
 * RBAC配置 against the test bed's real API server and Temporal, in a scratch namespace (the seeded
 * short-drama-prod already has a runbook-readonly account, which is left alone). The tests run in
 * order on one namespace: plan (nothing exists), execute (created), again (nothing to do), drift.
 */
describe('provisionReadonlyAccess', () => {
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  let scratch: Awaited<ReturnType<typeof scratchNamespace>>;
  let ns: string;
  let config: ReturnType<typeof testbedConfig>;
  const ids = () => [`provisionReadonlyAccess/${ns}/readonly-user`, `lock/${ns}/readonly-user`];
  // The manual's kubectl create role --verb=get,list,watch --resource=pods,services,deployments, as the API stores it.
  const manualRules = [
    { apiGroups: [''], resources: ['pods', 'services'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'watch'] },
  ];

  beforeAll(async () => {
    scratch = await scratchNamespace(kc, 'rbac-rb');
    ns = scratch.name;
    config = testbedConfig({
      ALLOWED_NAMESPACES: `${kubernetesNamespace},${ns}`,
      RUNBOOK_APPROVERS: JSON.stringify([
        { id: 'bob', roles: ['l2'] },
        { id: 'dave', roles: ['l1'] },
        { id: 'erin', roles: ['l2'] },
      ]),
    });
  });
  afterEach(async () => terminateRuns(config.temporal, ids()));
  afterAll(async () => scratch?.remove());

  /** The three objects as stored (404 → undefined). */
  async function objects() {
    const get = <T>(p: Promise<{ body: T }>) =>
      p.then(
        (r) => r.body,
        (err: unknown) => (statusOf(err) === 404 ? undefined : Promise.reject(err)),
      );
    const [sa, role, binding] = await Promise.all([
      get(core.readNamespacedServiceAccount('readonly-user', ns)),
      get(rbac.readNamespacedRole('readonly', ns)),
      get(rbac.readNamespacedRoleBinding('readonly-binding', ns)),
    ]);
    return { sa, role, binding, versions: [sa?.metadata?.resourceVersion, role?.metadata?.resourceVersion, binding?.metadata?.resourceVersion] };
  }

  /** A client that authenticates as the ServiceAccount itself (a TokenRequest token), to try the access for real. */
  async function asServiceAccount(): Promise<CoreV1Api> {
    const { body } = await core.createNamespacedServiceAccountToken('readonly-user', ns, { spec: { audiences: [], expirationSeconds: 600 } });
    const cluster = kc.getCurrentCluster()!;
    const own = new KubeConfig();
    own.loadFromOptions({ clusters: [cluster], users: [{ name: 'sa', token: body.status!.token }], contexts: [{ name: 'sa', cluster: cluster.name, user: 'sa' }], currentContext: 'sa' });
    return own.makeApiClient(CoreV1Api);
  }

  test('plan: exactly what would be created; nothing is created; the account can do nothing yet', async () => {
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const started = await runbooks.startRunbook('provisionReadonlyAccess', { namespace: ns }, { startedBy: 'erin' });
      expect(started.workflowId).toBe(`provisionReadonlyAccess/${ns}/readonly-user`);
      return runbooks.waitForResult<ProvisionReadonlyAccessResult>(started.workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
      [
        'ensure-access',
        true,
        `${ns}: create ServiceAccount readonly-user; create Role readonly (get, list, watch on pods, services; get, list, watch on deployments.apps); create RoleBinding readonly-binding (Role readonly -> ServiceAccount readonly-user)`,
      ],
    ]);
    expect(result.objects?.map((o) => [o.kind, o.name, o.action])).toEqual([
      ['ServiceAccount', 'readonly-user', 'created'],
      ['Role', 'readonly', 'created'],
      ['RoleBinding', 'readonly-binding', 'created'],
    ]);
    // The dry run's fields of the binding, leaf by leaf: what people would approve.
    expect(result.objects?.[2]?.changes.filter((c) => !c.path.startsWith('metadata') && c.path !== 'apiVersion' && c.path !== 'kind')).toEqual([
      { path: 'roleRef.apiGroup', change: 'added', after: 'rbac.authorization.k8s.io' },
      { path: 'roleRef.kind', change: 'added', after: 'Role' },
      { path: 'roleRef.name', change: 'added', after: 'readonly' },
      { path: 'subjects[0].kind', change: 'added', after: 'ServiceAccount' },
      { path: 'subjects[0].name', change: 'added', after: 'readonly-user' },
      { path: 'subjects[0].namespace', change: 'added', after: ns },
    ]);
    expect(result.accessBefore.user).toBe(`system:serviceaccount:${ns}:readonly-user`);
    expect(result.accessBefore.checks.filter((c) => c.allowed)).toEqual([]);
    expect(result.accessBefore.asExpected).toBe(false);
    expect(result.accessAfter).toBeUndefined();
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect((await objects()).versions).toEqual([undefined, undefined, undefined]);
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain('create Role readonly (get, list, watch on pods, services; get, list, watch on deployments.apps)');
  });

  test('execute + approval by someone else: the three objects are created; the account may list pods and may not delete them', async () => {
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('provisionReadonlyAccess', { namespace: ns, mode: 'execute', severity: 'P3' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'ensure-access');
      expect(pending.allowedRoles).toEqual(['l2', 'manager', 'cto']);
      expect(pending.approvers).toEqual(['bob']);
      expect(pending.change.summary).toContain(`${ns}: create ServiceAccount readonly-user; create Role readonly`);
      const decision = { stepId: 'ensure-access', planHash: pending.planHash, reason: 'dashboard needs read access' };
      await expect(runbooks.approve(workflowId, { ...decision, approver: 'erin' })).rejects.toThrow('four-eyes rule: erin started this run and cannot approve its steps');
      await expect(runbooks.approve(workflowId, { ...decision, approver: 'dave' })).rejects.toThrow('dave (l1) may not decide "ensure-access": needs one of l2, manager, cto');
      expect((await objects()).versions).toEqual([undefined, undefined, undefined]);
      await runbooks.approve(workflowId, { ...decision, approver: 'bob' });
      const finished = await runbooks.waitForResult<ProvisionReadonlyAccessResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'approved');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(result.verified).toBe(true);
    expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
      stepId: 'verify-access',
      detail: expect.stringMatching(
        new RegExp(`^verified: ${ns}/readonly-user may get, list, watch on pods, services; get, list, watch on deployments\\.apps and nothing more \\(the authorizer answers: as expected; `),
      ),
    });
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => [e.by, e.role, e.detail])).toEqual([['bob', 'l2', 'approved']]);
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.detail)).toEqual([
      `${ns}: ServiceAccount readonly-user created, Role readonly created, RoleBinding readonly-binding created (server-side apply, field manager runbook-automation)`,
    ]);
    const { sa, role, binding } = await objects();
    expect(sa?.metadata?.name).toBe('readonly-user');
    expect(JSON.parse(JSON.stringify(role?.rules))).toEqual(manualRules);
    expect(role?.metadata?.managedFields?.map((m) => [m.manager, m.operation])).toEqual([['runbook-automation', 'Apply']]);
    expect(binding?.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'readonly' });
    expect(JSON.parse(JSON.stringify(binding?.subjects))).toEqual([{ kind: 'ServiceAccount', name: 'readonly-user', namespace: ns }]);

    const check = (verb: string, resource: string) => result.accessAfter?.checks.find((c) => c.verb === verb && c.resource === resource && !c.subresource);
    expect(check('list', 'pods')).toMatchObject({ allowed: true, expected: 'allowed' });
    expect(check('delete', 'pods')).toMatchObject({ allowed: false, expected: 'denied' });
    expect(result.accessAfter?.checks.filter((c) => c.expected === 'allowed').every((c) => c.allowed)).toBe(true);
    expect(result.accessAfter?.asExpected).toBe(true);
    expect(result.timeline.filter((e) => e.event === 'read').map((e) => [e.stepId, e.detail])).toEqual([
      [
        'access-before',
        'NOT as expected; may not delete pods, create/get pods/exec, patch deployments.apps, get secrets, get/create pods/attach, pods/portforward, pods/proxy, pods/ephemeralcontainers, services/proxy, nodes/proxy; missing: get/list/watch pods, services, deployments.apps',
      ],
    ]);
    // The check after the change is the verify step's: its entry is "verified" (asserted above).
    expect(result.timeline.find((e) => e.event === 'verified')?.detail).toContain(
      '(the authorizer answers: as expected; may get/list/watch pods, services, deployments.apps; may not delete pods, create/get pods/exec, patch deployments.apps, get secrets, get/create pods/attach, pods/portforward, pods/proxy, pods/ephemeralcontainers, services/proxy, nodes/proxy)',
    );

    // And for real, with a token of the account: listing pods works, deleting one is forbidden.
    const own = await asServiceAccount();
    expect((await own.listNamespacedPod(ns)).response.statusCode).toBe(200);
    await expect(own.deleteNamespacedPod('any-pod', ns)).rejects.toMatchObject({ statusCode: 403 });
    await expect(own.listNamespacedSecret(ns)).rejects.toMatchObject({ statusCode: 403 });
    const markdown = await readBucketText(result.report!.markdownKey);
    expect(markdown).toContain('verified by SubjectAccessReview');
  });

  test('a second run: nothing to change, nobody is asked, nothing is written', async () => {
    const before = await objects();
    expect(before.versions.every(Boolean)).toBe(true);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('provisionReadonlyAccess', { namespace: ns, mode: 'execute' }, { startedBy: 'erin' });
      return runbooks.waitForResult<ProvisionReadonlyAccessResult>(workflowId);
    });
    expect(result.outcome).toBe('nothing-to-do');
    expect(result.plan.map((p) => [p.change.needed, p.change.summary])).toEqual([
      [false, `ServiceAccount readonly-user, Role readonly and RoleBinding readonly-binding in ${ns} already match (get, list, watch on pods, services; get, list, watch on deployments.apps)`],
    ]);
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect(result.verified).toBe(true);
    expect((await objects()).versions).toEqual(before.versions);
  });

  test('a Role someone edited (delete added) is shown as a diff and put back on approval', async () => {
    await rbac.patchNamespacedRole('readonly', ns, [{ op: 'add', path: '/rules/0/verbs/-', value: 'delete' }], undefined, undefined, 'kubectl-edit', undefined, undefined, {
      headers: { 'Content-Type': 'application/json-patch+json' },
    });
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('provisionReadonlyAccess', { namespace: ns, mode: 'execute' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'ensure-access');
      expect(pending.change.summary).toBe(
        `${ns}: ServiceAccount readonly-user already as wanted; update Role readonly: - rules[0].verbs[3] (was "delete"); RoleBinding readonly-binding already as wanted`,
      );
      expect((await objects()).role?.rules?.[0]?.verbs).toEqual(['get', 'list', 'watch', 'delete']);
      await runbooks.approve(workflowId, { stepId: 'ensure-access', planHash: pending.planHash, approver: 'bob', reason: 'nobody may delete pods with this account' });
      return runbooks.waitForResult<ProvisionReadonlyAccessResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    // Before: the edit let the account delete pods, and the check said so.
    expect(result.accessBefore.asExpected).toBe(false);
    expect(result.accessBefore.checks.find((c) => c.verb === 'delete' && c.resource === 'pods')).toMatchObject({ allowed: true, expected: 'denied', reason: expect.stringContaining('readonly') });
    expect(result.timeline.find((e) => e.stepId === 'access-before')?.detail).toMatch(
      /^NOT as expected; may get\/list\/watch pods, services, deployments\.apps; may not create\/get pods\/exec, patch deployments\.apps, get secrets, get\/create pods\/attach, pods\/portforward, pods\/proxy, pods\/ephemeralcontainers, services\/proxy, nodes\/proxy; UNEXPECTEDLY may delete pods \(.*readonly.*\)$/,
    );
    expect(result.accessAfter?.asExpected).toBe(true);
    expect(result.verified).toBe(true);
    const { role } = await objects();
    expect(JSON.parse(JSON.stringify(role?.rules))).toEqual(manualRules);
    const markdown = await readBucketText(result.report!.markdownKey);
    expect(markdown).toContain('Drift: Role readonly differed from the wanted state (- rules[0].verbs[3] (was "delete"))');
  });

  test('verify: another binding lets the account read Secrets; the objects are applied, but the run ends failed saying the account may do more than read', async () => {
    await rbac.createNamespacedRole(ns, { metadata: { name: 'secret-reader' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] });
    await rbac.createNamespacedRoleBinding(ns, {
      metadata: { name: 'secret-reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secret-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'readonly-user', namespace: ns }],
    });
    // Drift, so the step applies.
    await rbac.patchNamespacedRole('readonly', ns, [{ op: 'add', path: '/rules/0/verbs/-', value: 'delete' }], undefined, undefined, 'kubectl-edit', undefined, undefined, {
      headers: { 'Content-Type': 'application/json-patch+json' },
    });
    try {
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('provisionReadonlyAccess', { namespace: ns, mode: 'execute' }, { startedBy: 'erin' });
        const pending = await pendingOf(runbooks, workflowId, 'ensure-access');
        await runbooks.approve(workflowId, { stepId: 'ensure-access', planHash: pending.planHash, approver: 'bob', reason: 'dashboard needs read access' });
        return runbooks.waitForResult<ProvisionReadonlyAccessResult>(workflowId);
      });
      const sentence = `provisionReadonlyAccess promised ${ns}/readonly-user may get, list, watch on pods, services; get, list, watch on deployments.apps and nothing more, but the authorizer answers: NOT as expected; `;
      expect(result.outcome).toBe('failed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['ensure-access']);
      expect(result.summary.startsWith(sentence)).toBe(true);
      expect(result.summary).toMatch(/UNEXPECTEDLY may get secrets \(.*secret-reader.*\)/);
      expect(result.timeline.find((e) => e.event === 'failed' && e.stepId === 'verify-access')?.detail).toContain(sentence);
      expect(result.timeline.at(-1)?.detail).toContain(`failed: ${sentence}`);
      expect(await readBucketText(result.report!.markdownKey)).toContain(sentence);
    } finally {
      await rbac.deleteNamespacedRoleBinding('secret-reader', ns);
      await rbac.deleteNamespacedRole('secret-reader', ns);
    }
  });

  test('post-check: a grant of get pods/exec from another binding is found by the authorizer and fails the step', async () => {
    // A hand-made Role and binding outside the runbook's own objects, and drift so the step applies.
    await rbac.createNamespacedRole(ns, { metadata: { name: 'debug-exec' }, rules: [{ apiGroups: [''], resources: ['pods/exec', 'pods/portforward'], verbs: ['get'] }] });
    await rbac.createNamespacedRoleBinding(ns, {
      metadata: { name: 'debug-exec' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'debug-exec' },
      subjects: [{ kind: 'ServiceAccount', name: 'readonly-user', namespace: ns }],
    });
    await rbac.patchNamespacedRole('readonly', ns, [{ op: 'add', path: '/rules/0/verbs/-', value: 'delete' }], undefined, undefined, 'kubectl-edit', undefined, undefined, {
      headers: { 'Content-Type': 'application/json-patch+json' },
    });
    try {
      const result = await withRunbooks(config, async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('provisionReadonlyAccess', { namespace: ns, mode: 'execute' }, { startedBy: 'erin' });
        const pending = await pendingOf(runbooks, workflowId, 'ensure-access');
        await runbooks.approve(workflowId, { stepId: 'ensure-access', planHash: pending.planHash, approver: 'bob', reason: 'put the Role back' });
        const finished = await runbooks.waitForResult<ProvisionReadonlyAccessResult>(workflowId);
        await recordHistory(client.workflow.getHandle(workflowId), 'tunnel-post-check');
        return finished;
      });
      expect(result.outcome).toBe('failed');
      expect(result.verified).toBe(false);
      const failed = result.timeline.find((e) => e.event === 'failed' && e.stepId === 'ensure-access')?.detail;
      expect(failed).toContain(`objects applied, but the authorizer lets ${ns}/readonly-user get pods/exec (`);
      expect(failed).toContain('get pods/portforward (');
      expect(failed).toContain('debug-exec');
      expect(failed).not.toContain('create pods/exec');
      // Asked of the real authorizer, for get and create of every tunnelling subresource.
      const asked = (result.accessAfter?.checks ?? []).filter((c) => c.subresource).map((c) => [`${c.verb} ${c.resource}/${c.subresource}`, c.allowed]);
      expect(asked).toEqual(
        expect.arrayContaining([
          ['get pods/exec', true],
          ['create pods/exec', false],
          ['get pods/attach', false],
          ['create pods/attach', false],
          ['get pods/portforward', true],
          ['get services/proxy', false],
          ['create nodes/proxy', false],
          ['get pods/ephemeralcontainers', false],
        ]),
      );
      expect(result.timeline.find((e) => e.stepId === 'verify-access')?.detail).toMatch(/^NOT as expected; .*UNEXPECTEDLY may get pods\/exec/);
      expect(JSON.parse(JSON.stringify((await objects()).role?.rules))).toEqual(manualRules);
    } finally {
      await rbac.deleteNamespacedRoleBinding('debug-exec', ns);
      await rbac.deleteNamespacedRole('debug-exec', ns);
    }
  });

  test('attack: rules asking for exec, attach, port-forward or a proxy, with any read verb, are refused before anything is created', async () => {
    await withRunbooks(config, async ({ client, taskQueue }) => {
      for (const [resource, verb] of [
        ['pods/exec', 'get'],
        ['pods/attach', 'watch'],
        ['pods/portforward', 'get'],
        ['pods/proxy', 'list'],
        ['services/proxy', 'get'],
        ['nodes/proxy', 'get'],
        ['pods/ephemeralcontainers', 'get'],
      ] as const) {
        const handle = await client.workflow.start('provisionReadonlyAccess', {
          taskQueue,
          workflowId: `pra-tunnel-${randomUUID()}`,
          args: [{ namespace: ns, role: 'tunnel', roleBinding: 'tunnel', serviceAccount: 'tunnel', mode: 'execute', rules: [{ apiGroups: [''], resources: [resource], verbs: [verb] }] }],
        });
        const error = await handle.result().then(
          () => undefined,
          (err: unknown) => err,
        );
        const failure = (error as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
        expect([failure.message, failure.type, failure.nonRetryable]).toEqual([
          `invalid input for provisionReadonlyAccess: rules.0.resources.0: resource "${resource}" runs commands in or tunnels to workloads (exec, attach, port-forward and proxy use GET too): never granted by provisionReadonlyAccess`,
          'InvalidInput',
          true,
        ]);
        expect(await scheduledActivityTypes(handle)).toEqual([]);
      }
      // Wildcards that would include them are refused by the resource pattern.
      await expect(runbooksStart(client, taskQueue, [{ apiGroups: [''], resources: ['pods/*'], verbs: ['get'] }])).resolves.toContain(
        'rules.0.resources.0: expected a resource such as pods, deployments or pods/log (no wildcards)',
      );
    });
    await expect(rbac.readNamespacedRole('tunnel', ns)).rejects.toMatchObject({ statusCode: 404 });
    await expect(core.readNamespacedServiceAccount('tunnel', ns)).rejects.toMatchObject({ statusCode: 404 });
  });

  test('least privilege: read rights the worker does not hold itself (configmaps) cannot be granted; the plan says why and nothing is created', async () => {
    const outcome = await withRunbooks(config, async ({ client, taskQueue }) => {
      const handle = await client.workflow.start('provisionReadonlyAccess', {
        taskQueue,
        workflowId: `pra-beyond-${randomUUID()}`,
        args: [{ namespace: ns, role: 'beyond', roleBinding: 'beyond', serviceAccount: 'beyond', rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }] }],
      });
      return handle.result().then(
        (result: unknown) => JSON.stringify(result),
        (err: unknown) => {
          // The activity's refusal, under Temporal's "Activity task failed".
          let cause = (err as WorkflowFailedError).cause as Error & { cause?: Error };
          while (cause.cause) cause = cause.cause as Error & { cause?: Error };
          return cause.message;
        },
      );
    });
    expect(outcome).toContain('is attempting to grant RBAC permissions not currently held');
    expect(outcome).toContain("Kubernetes lets an account grant only what it holds itself: grant those rights to the worker's account too");
    await expect(rbac.readNamespacedRole('beyond', ns)).rejects.toMatchObject({ statusCode: 404 });
    await expect(core.readNamespacedServiceAccount('beyond', ns)).rejects.toMatchObject({ statusCode: 404 });
  });

  /** The failure message of a run with these rules. */
  async function runbooksStart(client: Parameters<Parameters<typeof withRunbooks>[1]>[0]['client'], taskQueue: string, rules: unknown[]): Promise<string> {
    const handle = await client.workflow.start('provisionReadonlyAccess', { taskQueue, workflowId: `pra-tunnel-${randomUUID()}`, args: [{ namespace: ns, role: 'tunnel', mode: 'execute', rules }] });
    return handle.result().then(
      () => 'no failure',
      (err: unknown) => String(((err as WorkflowFailedError).cause as Error).message),
    );
  }

  test('bad input fails non-retryable before any activity; kube-system is refused', async () => {
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('provisionReadonlyAccess', { rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for provisionReadonlyAccess: rules.0.resources.0: secrets are never granted by provisionReadonlyAccess: reading a Secret reveals its values',
      );
      const handle = await client.workflow.start('provisionReadonlyAccess', {
        taskQueue,
        workflowId: `pra-bad-${randomUUID()}`,
        args: [{ namespace: ns, serviceAccount: 'Read_Only', mode: 'execute', rules: [{ apiGroups: [''], resources: ['*'], verbs: ['delete'] }] }],
      });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const failure = (error as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe(
        'invalid input for provisionReadonlyAccess: serviceAccount: expected a Kubernetes name (lowercase letters, digits, -); rules.0.resources.0: expected a resource such as pods, deployments or pods/log (no wildcards); rules.0.verbs.0: only get, list and watch: this runbook grants read-only access',
      );
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(await scheduledActivityTypes(handle)).toEqual([]);

      const system = await client.workflow.start('provisionReadonlyAccess', { taskQueue, workflowId: `pra-bad-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute' }] });
      const refused = await system.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(String(((refused as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(system)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
    await expect(core.readNamespacedServiceAccount('readonly-user', 'kube-system')).rejects.toMatchObject({ statusCode: 404 });
  });
});
