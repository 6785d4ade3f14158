import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { AppsV1Api, type V1PodTemplateSpec } from '@kubernetes/client-node';
import type { PodCrashLoopResult } from '../../workflows/pod-crash-loop';
import { recordHistory } from '../helpers/histories';
import { deleteDeployment, outOfMemory, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { patchDeployment } from '../helpers/kube-objects';
import { failingPod, type RealFault } from '../helpers/kube-pods';
import { testbedConfig } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';

const namespace = 'short-drama-prod';

/**
 * 场景1 on the test bed's real node. Every case works on a short-drama-app of its own (scratchApp:
 * container "app", limits.memory 256Mi) that fails for real through the app's switches: the kernel
 * OOM-kills it, it exits for a missing config key, or the kubelet refuses a key missing from its
 * ConfigMap. So the seeded short-drama-app keeps its revisions and replicas; all are deleted at the end.
 */
describe('podCrashLoop', () => {
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify([
      { id: 'bob', roles: ['l2'] },
      { id: 'carol', roles: ['manager'] },
    ]),
  });
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const made: string[] = [];

  /** Pods labelled app=<name> unless other labels are given. */
  const selectors = new Map<string, string>();
  async function scratch(prefix: string, options: { labels?: (name: string) => Record<string, string>; env?: Record<string, string> } = {}): Promise<string> {
    const name = unique(prefix);
    made.push(name);
    const podLabels = options.labels?.(name) ?? { app: name };
    selectors.set(
      name,
      Object.entries(podLabels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    );
    await scratchApp(kc, name, { labels: podLabels, env: options.env });
    return name;
  }

  async function deploymentOf(name: string) {
    const { body } = await apps.readNamespacedDeployment(name, namespace);
    return {
      memory: body.spec!.template.spec!.containers[0]!.resources?.limits?.memory,
      revision: Number(body.metadata?.annotations?.['deployment.kubernetes.io/revision']),
      template: body.spec!.template,
    };
  }

  /** The name of the Deployment's pod once it fails for real as `fault` says. */
  async function crash(name: string, fault: RealFault): Promise<string> {
    return (await failingPod(kc, namespace, selectors.get(name)!, fault)).metadata!.name!;
  }

  /** A new revision of the scratch app whose container gets `env` (a strategic merge, as `kubectl set env` does). */
  async function release(name: string, env: Array<Record<string, unknown>>): Promise<void> {
    await patchDeployment(kc, namespace, name, { spec: { template: { spec: { containers: [{ name: 'app', env }] } } } });
  }

  /**
   * Every case's app, made at once in beforeAll: their pods start and fail side by side on the node
   * instead of one case after another (each wait for a real OOM kill is ~20 s). A case awaits its own.
   */
  const caseApps: Record<string, Promise<string>> = {};
  const appOf = (key: string): Promise<string> => caseApps[key]!;
  beforeAll(() => {
    const cases: Array<[string, string, Parameters<typeof scratch>[1]?]> = [
      // Labelled app.kubernetes.io/*, not app=: the Deployment's pods are found by its own selector, whatever the labels are called.
      ['oom-plan', 'pcl-oom-plan', { labels: (n) => ({ 'app.kubernetes.io/name': n, 'app.kubernetes.io/component': 'api' }), env: outOfMemory }],
      ['oom', 'pcl-oom', { env: outOfMemory }],
      ['code', 'pcl-code'],
      ['config', 'pcl-config'],
      ['healthy', 'pcl-healthy'],
      ['reject', 'pcl-reject', { env: outOfMemory }],
      ['resume', 'pcl-resume', { env: outOfMemory }],
    ];
    for (const [key, prefix, options] of cases) {
      caseApps[key] = scratch(prefix, options);
      caseApps[key].catch(() => undefined); // reported by the case that awaits it
    }
  });

  const runIds = (names: string[]) => names.flatMap((n) => [`podCrashLoop/${namespace}/${n}`, `lock/${namespace}/${n}`]);

  afterEach(async () => {
    await terminateRuns(config.temporal, runIds(made));
  });

  afterAll(async () => {
    for (const name of made) await deleteDeployment(kc, name);
  });

  test("(a) OOMKilled, plan: names the change and changes nothing; the pod found by the Deployment's own selector", async () => {
    const name = await appOf('oom-plan');
    const pod = await crash(name, 'OOMKilled');
    const before = await deploymentOf(name);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name }, { startedBy: 'erin' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.cause).toBe('oom-killed');
    expect(result.pod).toBe(pod);
    expect(result.plan.filter((p) => p.change.needed).map((p) => [p.stepId, p.change.summary])).toEqual([
      ['raise-memory-limit', `memory limit of ${namespace}/${name} container app 256Mi -> 384Mi (x1.5, cap 4Gi)`],
    ]);
    expect(result.targetMemoryLimit).toBe('384Mi');
    expect(await deploymentOf(name)).toEqual(before);
  });

  test('(a) OOMKilled, execute + approve: the memory limit is raised x1.5 once, verified, report written', async () => {
    const name = await appOf('oom');
    await crash(name, 'OOMKilled');
    const before = await deploymentOf(name);
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute', severity: 'P1' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'raise-memory-limit');
      await runbooks.approve(workflowId, { stepId: 'raise-memory-limit', planHash: pending.planHash, approver: 'bob', reason: 'OOM' });
      const finished = await runbooks.waitForResult<PodCrashLoopResult>(workflowId);
      await recordHistory(client.workflow.getHandle(workflowId), 'approved');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
      ['raise-memory-limit', expect.stringMatching(/limits\.memory 256Mi -> 384Mi; rollout complete/)],
    ]);
    const after = await deploymentOf(name);
    expect(after.memory).toBe('384Mi'); // not 576Mi
    expect(after.revision).toBe(before.revision + 1);
    expect(result.after).toMatchObject({ crashLooping: 0, revision: before.revision + 1 });
    expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
      stepId: 'verify',
      detail: `verified: every pod of ${namespace}/${name} Ready, none in CrashLoopBackOff (1 of 1 pods are Ready, 0 in CrashLoopBackOff); container app running with limits.memory 384Mi in every pod (the pods run with 384Mi)`,
    });
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain('OOMKilled');
  });

  test('(b) crashing right after a new rollout with errors in the previous logs: rolled back to the previous revision', async () => {
    const name = await appOf('code');
    const firstRevision = (await deploymentOf(name)).revision;
    const { body: sets } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${name}`);
    const previousSet = sets.items.find((rs) => Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision']) === firstRevision)!;
    // A release that exits for a config key it now needs: its pod crash-loops, the old one serves on.
    await release(name, [{ name: 'REQUIRED_CONFIG', value: 'PAYMENT_GATEWAY_URL' }]);
    await crash(name, 'Error');
    const newRevision = (await deploymentOf(name)).revision;
    expect(newRevision).toBe(firstRevision + 1);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'rollback');
      expect(pending.change.summary).toMatch(new RegExp(`from revision ${newRevision} to revision ${firstRevision} `));
      await runbooks.approve(workflowId, { stepId: 'rollback', planHash: pending.planHash, approver: 'bob', reason: 'bad release' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.cause).toBe('code-error');
    expect(result.rollbackToRevision).toBe(firstRevision);
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['rollback']);
    const after = await deploymentOf(name);
    expect(after.memory).toBe('256Mi');
    expect(after.revision).toBe(newRevision + 1);
    const { body: rs } = await apps.readNamespacedReplicaSet(previousSet.metadata!.name!, namespace);
    const expected = JSON.parse(JSON.stringify(rs.spec!.template)) as V1PodTemplateSpec;
    delete expected.metadata!.labels!['pod-template-hash'];
    expect(JSON.parse(JSON.stringify(after.template))).toEqual(expected);
    expect(after.template.metadata?.annotations?.['runbook-testbed/change']).toBeUndefined();
  });

  test('(c) config error: no change, the report names the missing key', async () => {
    const name = await appOf('config');
    const key = `FEATURE_FLAGS_${name.slice(-8).toUpperCase()}`;
    // A release that reads a key ConfigMap app-config lacks: the kubelet refuses to create its container.
    await release(name, [{ name: key, valueFrom: { configMapKeyRef: { name: 'app-config', key } } }]);
    await crash(name, 'CreateContainerConfigError');
    const before = await deploymentOf(name);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute' }, { startedBy: 'erin' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    expect(result.outcome).toBe('nothing-to-do');
    expect(result.cause).toBe('config-error');
    expect(result.missing).toBe(`key ${key} in ConfigMap ${namespace}/app-config`);
    expect(result.plan.filter((p) => p.change.needed)).toEqual([]);
    expect(await deploymentOf(name)).toEqual(before);
    const markdown = await readBucketText(result.report!.markdownKey);
    expect(markdown).toContain(key);
    expectIncidentReport(markdown, { timeline: false });
  });

  test('(d) healthy deployment: nothing to do', async () => {
    const name = await appOf('healthy');
    const before = await deploymentOf(name);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute' }, { startedBy: 'erin' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    expect(result.outcome).toBe('nothing-to-do');
    expect(result.cause).toBe('healthy');
    expect(result.pod).toBeUndefined();
    expect(await deploymentOf(name)).toEqual(before);
  });

  test('execute + reject: nothing changes and the run says what was not done', async () => {
    const name = await appOf('reject');
    await crash(name, 'OOMKilled');
    const before = await deploymentOf(name);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, workflowId, 'raise-memory-limit');
      await runbooks.reject(workflowId, { stepId: 'raise-memory-limit', planHash: pending.planHash, approver: 'carol', reason: 'not now' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual([
      ['raise-memory-limit', 'rejected'],
      ['rollback', 'nothing to change: no rollback (cause oom-killed)'],
    ]);
    expect(result.summary).toContain('oom-killed');
    expect(await deploymentOf(name)).toEqual(before);
  });

  test('a worker lost between steps: a second worker resumes and the limit is raised once', async () => {
    const name = await appOf('resume');
    await crash(name, 'OOMKilled');
    const before = await deploymentOf(name);
    let workflowId = '';
    await withRunbooks(config, async ({ runbooks }) => {
      ({ workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute' }, { startedBy: 'erin' }));
      await pendingOf(runbooks, workflowId, 'raise-memory-limit');
    });
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const pending = await pendingOf(runbooks, workflowId, 'raise-memory-limit');
      await runbooks.approve(workflowId, { stepId: 'raise-memory-limit', planHash: pending.planHash, approver: 'bob', reason: 'OOM' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    expect(result.outcome).toBe('completed');
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => e.stepId)).toEqual(['raise-memory-limit']);
    const after = await deploymentOf(name);
    expect(after.memory).toBe('384Mi');
    expect(after.revision).toBe(before.revision + 1);
  });

  test('bad input: a clear non-retryable error before anything is touched', async () => {
    const before = await apps.readNamespacedDeployment('short-drama-app', namespace);
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('podCrashLoop', { memoryLimitFactor: 1 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for podCrashLoop: memoryLimitFactor: must be above 1 (the limit is raised, never lowered)',
      );
      const scheduled = scheduledActivityTypes;
      const nonsense = await client.workflow.start('podCrashLoop', { taskQueue, workflowId: `pcl-bad-${randomUUID()}`, args: [{ memoryLimitFactor: 0.5, maxMemoryLimit: 'lots', mode: 'execute' }] });
      const invalid = await nonsense.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(invalid).toBeInstanceOf(WorkflowFailedError);
      const failure = (invalid as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe(
        'invalid input for podCrashLoop: memoryLimitFactor: must be above 1 (the limit is raised, never lowered); maxMemoryLimit: expected a memory quantity of at least 1Mi, such as 512Mi or 4Gi',
      );
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(await scheduled(nonsense)).toEqual([]);

      const handle = await client.workflow.start('podCrashLoop', { taskQueue, workflowId: `pcl-bad-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute' }] });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      expect(String(((error as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduled(handle)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
    const after = await apps.readNamespacedDeployment('short-drama-app', namespace);
    expect(after.body.metadata?.generation).toBe(before.body.metadata?.generation);
  });
});
