import { randomUUID } from 'node:crypto';
import { NetworkingV1Api, type V1NetworkPolicy } from '@kubernetes/client-node';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplyNetworkPolicyResult } from '../../workflows/apply-network-policy';
import { recordHistory } from '../helpers/histories';
import { adminKubeConfig, kubernetesNamespace, scratchNamespace, statusOf } from '../helpers/kube-cluster';
import { scratchPod } from '../helpers/kube-activity-scratch';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

/** The manual's NetworkPolicy spec (安全管理 / 网络策略), written out here independently of the workflow. */
const manualSpec = {
  podSelector: { matchLabels: { app: 'short-drama-app' } },
  policyTypes: ['Ingress', 'Egress'],
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'nginx-ingress' } } }], ports: [{ protocol: 'TCP', port: 8000 }] }],
  egress: [
    { to: [{ podSelector: { matchLabels: { app: 'postgres' } } }], ports: [{ protocol: 'TCP', port: 5432 }] },
    { to: [{ podSelector: { matchLabels: { app: 'redis' } } }], ports: [{ protocol: 'TCP', port: 6379 }] },
  ],
};

/**
 * 网络策略 against the test bed's real API server and Temporal, in a scratch namespace with an app
 * pod and a postgres pod (real pods on the node; no ingress controller and no redis pod there). The tests
 * run in order on one namespace: plan, execute (created), again (nothing to do), drift.
 */
describe('applyNetworkPolicy', () => {
  const kc = adminKubeConfig();
  const networking = kc.makeApiClient(NetworkingV1Api);
  let scratch: Awaited<ReturnType<typeof scratchNamespace>>;
  let ns: string;
  let config: ReturnType<typeof testbedConfig>;
  const policy = 'app-network-policy';
  const ids = () => [`applyNetworkPolicy/${ns}/${policy}`, `lock/${ns}/${policy}`];

  beforeAll(async () => {
    scratch = await scratchNamespace(kc, 'netpol-rb');
    ns = scratch.name;
    for (const app of ['short-drama-app', 'postgres']) {
      await scratchPod(kc, ns, `${app}-0`, { app });
    }
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

  async function live(): Promise<V1NetworkPolicy | undefined> {
    return networking.readNamespacedNetworkPolicy(policy, ns).then(
      (r) => r.body,
      (err: unknown) => (statusOf(err) === 404 ? undefined : Promise.reject(err)),
    );
  }
  const plain = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

  test('plan: the field-level diff of what would be created and the pods each selector matches; nothing is created', async () => {
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const started = await runbooks.startRunbook('applyNetworkPolicy', { namespace: ns }, { startedBy: 'erin' });
      expect(started.workflowId).toBe(`applyNetworkPolicy/${ns}/${policy}`);
      return runbooks.waitForResult<ApplyNetworkPolicyResult>(started.workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
      [
        'apply-policy',
        true,
        `create NetworkPolicy ${ns}/${policy}: pods app=short-drama-app accept ingress only from app=nginx-ingress on TCP 8000; egress only to app=postgres on TCP 5432 and app=redis on TCP 6379`,
      ],
    ]);
    expect(result.planned?.action).toBe('created');
    expect(result.planned?.changes.filter((c) => c.path.startsWith('spec.'))).toEqual([
      { path: 'spec.egress[0].ports[0].port', change: 'added', after: 5432 },
      { path: 'spec.egress[0].ports[0].protocol', change: 'added', after: 'TCP' },
      { path: 'spec.egress[0].to[0].podSelector.matchLabels.app', change: 'added', after: 'postgres' },
      { path: 'spec.egress[1].ports[0].port', change: 'added', after: 6379 },
      { path: 'spec.egress[1].ports[0].protocol', change: 'added', after: 'TCP' },
      { path: 'spec.egress[1].to[0].podSelector.matchLabels.app', change: 'added', after: 'redis' },
      { path: 'spec.ingress[0].from[0].podSelector.matchLabels.app', change: 'added', after: 'nginx-ingress' },
      { path: 'spec.ingress[0].ports[0].port', change: 'added', after: 8000 },
      { path: 'spec.ingress[0].ports[0].protocol', change: 'added', after: 'TCP' },
      { path: 'spec.podSelector.matchLabels.app', change: 'added', after: 'short-drama-app' },
      { path: 'spec.policyTypes[0]', change: 'added', after: 'Ingress' },
      { path: 'spec.policyTypes[1]', change: 'added', after: 'Egress' },
    ]);
    expect(result.selectedPods).toEqual({ app: 1, ingressController: 0, postgres: 1, redis: 0 });
    expect(result.plan[0]!.change.observed).toEqual({
      warnings: [`no pod in ${ns} matches app=nginx-ingress: the app would accept no ingress traffic (the manual's podSelector only matches pods of the same namespace)`, 'no pod matches app=redis'],
    });
    expect(plain(result.desired)).toEqual({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: policy, namespace: ns }, spec: manualSpec });
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect(result.live).toBeUndefined();
    expect(await live()).toBeUndefined();
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain('no pod matches app=redis');
  });

  test("execute + approval by someone else: the manual's NetworkPolicy is server-side applied and verified live", async () => {
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('applyNetworkPolicy', { namespace: ns, mode: 'execute', severity: 'P3' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'apply-policy');
      expect(pending.allowedRoles).toEqual(['l2', 'manager', 'cto']);
      expect(pending.approvers).toEqual(['bob']);
      expect(pending.change.summary).toBe(
        `create NetworkPolicy ${ns}/${policy}: pods app=short-drama-app accept ingress only from app=nginx-ingress on TCP 8000; egress only to app=postgres on TCP 5432 and app=redis on TCP 6379`,
      );
      await expect(runbooks.approve(workflowId, { stepId: 'apply-policy', planHash: pending.planHash, approver: 'erin', reason: 'hardening' })).rejects.toThrow(
        'four-eyes rule: erin started this run and cannot approve its steps',
      );
      expect(await live()).toBeUndefined();
      await runbooks.approve(workflowId, { stepId: 'apply-policy', planHash: pending.planHash, approver: 'bob', reason: 'hardening per the manual' });
      const finished = await runbooks.waitForResult<ApplyNetworkPolicyResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'approved');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.detail)).toEqual([
      `NetworkPolicy ${ns}/${policy} created (server-side apply, field manager runbook-automation; 16 fields)`,
    ]);
    expect(result.live).toEqual({ kind: 'NetworkPolicy', name: policy, exists: true, matches: true, differences: [] });
    expect(result.verified).toBe(true);
    expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
      stepId: 'verify-policy',
      detail: `verified: NetworkPolicy ${ns}/${policy} live with the desired spec (its live spec equals the desired spec)`,
    });
    const body = await live();
    expect(plain(body?.spec)).toEqual(manualSpec);
    expect(body?.metadata?.managedFields?.map((m) => [m.manager, m.operation])).toEqual([['runbook-automation', 'Apply']]);
    const markdown = await readBucketText(result.report!.markdownKey);
    expect(markdown).toContain('live spec verified equal to the desired spec');
  });

  test('a second run: nothing to change, nobody is asked, nothing is written', async () => {
    const before = (await live())?.metadata?.resourceVersion;
    expect(before).toBeDefined();
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('applyNetworkPolicy', { namespace: ns, mode: 'execute' }, { startedBy: 'erin' });
      return runbooks.waitForResult<ApplyNetworkPolicyResult>(workflowId);
    });
    expect(result.outcome).toBe('nothing-to-do');
    expect(result.plan.map((p) => [p.change.needed, p.change.summary])).toEqual([
      [
        false,
        `NetworkPolicy ${ns}/${policy} already matches the manual's: pods app=short-drama-app accept ingress only from app=nginx-ingress on TCP 8000; egress only to app=postgres on TCP 5432 and app=redis on TCP 6379`,
      ],
    ]);
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect(result.verified).toBe(true);
    expect((await live())?.metadata?.resourceVersion).toBe(before);
  });

  test('a policy someone edited (redis port, an extra ingress rule) is shown as a diff and put back on approval', async () => {
    await networking.patchNamespacedNetworkPolicy(
      policy,
      ns,
      [
        { op: 'replace', path: '/spec/egress/1/ports/0/port', value: 6380 },
        { op: 'add', path: '/spec/ingress/-', value: { from: [{ podSelector: { matchLabels: { app: 'debug' } } }] } },
      ],
      undefined,
      undefined,
      'kubectl-edit',
      undefined,
      undefined,
      { headers: { 'Content-Type': 'application/json-patch+json' } },
    );
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('applyNetworkPolicy', { namespace: ns, mode: 'execute' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'apply-policy');
      expect(pending.change.summary).toBe(
        `update NetworkPolicy ${ns}/${policy} (2 fields): spec.egress[1].ports[0].port: 6380 -> 6379, - spec.ingress[1].from[0].podSelector.matchLabels.app (was "debug")`,
      );
      expect(pending.change.details).toEqual({
        action: 'configured',
        changes: [
          { path: 'spec.egress[1].ports[0].port', change: 'changed', before: 6380, after: 6379 },
          { path: 'spec.ingress[1].from[0].podSelector.matchLabels.app', change: 'removed', before: 'debug' },
        ],
      });
      expect((await live())?.spec?.ingress).toHaveLength(2);
      await runbooks.approve(workflowId, { stepId: 'apply-policy', planHash: pending.planHash, approver: 'bob', reason: 'back to the manual' });
      return runbooks.waitForResult<ApplyNetworkPolicyResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.verified).toBe(true);
    expect(plain((await live())?.spec)).toEqual(manualSpec);
    const markdown = await readBucketText(result.report!.markdownKey);
    expect(markdown).toContain(
      'Drift: the live NetworkPolicy differed from the manual\'s (spec.egress[1].ports[0].port: 6380 -> 6379, - spec.ingress[1].from[0].podSelector.matchLabels.app (was "debug"))',
    );
  });

  test('bad input fails non-retryable before any activity; kube-system is refused', async () => {
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('applyNetworkPolicy', { namespace: ns, ingressControllerLabels: {} }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for applyNetworkPolicy: ingressControllerLabels: at least one label: an empty selector matches every pod of the namespace',
      );
      const handle = await client.workflow.start('applyNetworkPolicy', {
        taskQueue,
        workflowId: `anp-bad-${randomUUID()}`,
        args: [{ namespace: ns, policy: 'App_Policy', redisPort: 70000, mode: 'execute' }],
      });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const failure = (error as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe('invalid input for applyNetworkPolicy: policy: expected a Kubernetes name (lowercase letters, digits, -); redisPort: ports are 1-65535');
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(await scheduledActivityTypes(handle)).toEqual([]);

      const system = await client.workflow.start('applyNetworkPolicy', { taskQueue, workflowId: `anp-bad-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute' }] });
      const refused = await system.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(String(((refused as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(system)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
    await expect(networking.readNamespacedNetworkPolicy(policy, 'kube-system')).rejects.toMatchObject({ statusCode: 404 });
  });
});
