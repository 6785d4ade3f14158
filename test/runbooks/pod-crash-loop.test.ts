import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { AppsV1Api, CoreV1Api, PatchUtils, type V1PodTemplateSpec } from '@kubernetes/client-node';
import type { PodCrashLoopResult } from '../../workflows/pod-crash-loop';
import { recordHistory } from '../helpers/histories';
import { deleteDeployment, scratchDeployment, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { newRolloutRevision } from '../helpers/kube-objects';
import { putIntoCrashLoop, readyPods, setContainerLogs } from '../helpers/kube-pods';
import { testbedConfig } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';

const namespace = 'short-drama-prod';
const strategic = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_STRATEGIC_MERGE_PATCH } };

/**
 * 场景1 against the real Kubernetes API of the test bed (kwok runs the pods). Every case works on
 * a scratch Deployment of its own (container "app", limits.memory 256Mi), so the seeded
 * short-drama-app keeps its revisions and replicas; all are deleted at the end.
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
  const core = kc.makeApiClient(CoreV1Api);
  const made: string[] = [];

  /** Pods labelled app=<name> unless other labels are given. */
  const selectors = new Map<string, string>();
  async function scratch(prefix: string, labels?: (name: string) => Record<string, string>): Promise<string> {
    const name = unique(prefix);
    made.push(name);
    const podLabels = labels?.(name) ?? { app: name };
    selectors.set(
      name,
      Object.entries(podLabels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    );
    await scratchDeployment(kc, name, { labels: podLabels });
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

  /** The Deployment's one ready pod put into CrashLoopBackOff (OOMKilled or Error), with previous logs. */
  async function crash(name: string, reason: 'OOMKilled' | 'Error', previous: string[]): Promise<string> {
    const [pod] = await readyPods(kc, namespace, selectors.get(name)!, 1);
    const podName = pod!.metadata!.name!;
    await setContainerLogs(kc, namespace, podName, 'app', { current: ['starting'], previous });
    await putIntoCrashLoop(kc, namespace, podName, { reason, container: 'app', restartCount: 6 });
    return podName;
  }

  const runIds = (names: string[]) => names.flatMap((n) => [`podCrashLoop/${namespace}/${n}`, `lock/${namespace}/${n}`]);

  afterEach(async () => {
    await terminateRuns(config.temporal, runIds(made));
  });

  afterAll(async () => {
    for (const name of made) await deleteDeployment(kc, name);
  });

  test('(a) OOMKilled, plan: names the change and changes nothing', async () => {
    const name = await scratch('pcl-oom-plan');
    const before = await deploymentOf(name);
    const pod = await crash(name, 'OOMKilled', ['allocating buffers', 'heap 250Mi']);
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

  test("(a) the Deployment's pods are found by its own selector, whatever the labels are called", async () => {
    const name = await scratch('pcl-labels', (n) => ({ 'app.kubernetes.io/name': n, 'app.kubernetes.io/component': 'api' }));
    const pod = await crash(name, 'OOMKilled', ['heap 250Mi']);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name }, { startedBy: 'erin' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    expect([result.cause, result.pod]).toEqual(['oom-killed', pod]);
  });

  test('(a) OOMKilled, execute + approve: the memory limit is raised x1.5 once, verified, report written', async () => {
    const name = await scratch('pcl-oom');
    const before = await deploymentOf(name);
    await crash(name, 'OOMKilled', ['allocating buffers']);
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
    const name = await scratch('pcl-code');
    const firstRevision = (await deploymentOf(name)).revision;
    const { body: sets } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${name}`);
    const previousSet = sets.items.find((rs) => Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision']) === firstRevision)!;
    const newRevision = await newRolloutRevision(kc, namespace, name);
    expect(newRevision).toBe(firstRevision + 1);
    await crash(name, 'Error', ['booting v2', 'ERROR cannot read property "id" of undefined', 'FATAL exiting']);
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
    const name = await scratch('pcl-config');
    const before = await deploymentOf(name);
    const [pod] = await readyPods(kc, namespace, selectors.get(name)!, 1);
    const podName = pod!.metadata!.name!;
    const message = `couldn't find key FEATURE_FLAGS_${name.slice(-8).toUpperCase()} in ConfigMap ${namespace}/app-config`;
    await core.patchNamespacedPodStatus(
      podName,
      namespace,
      {
        status: {
          conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady' }],
          containerStatuses: [
            {
              name: 'app',
              image: 'registry.example/scratch:1.0',
              imageID: '',
              ready: false,
              started: false,
              restartCount: 0,
              state: { running: null, waiting: { reason: 'CreateContainerConfigError', message } },
            },
          ],
        },
      },
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      strategic,
    );
    const now = new Date();
    await core.createNamespacedEvent(namespace, {
      metadata: { generateName: `${podName}.`, namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', name: podName, namespace, uid: pod!.metadata!.uid, fieldPath: 'spec.containers{app}' },
      type: 'Warning',
      reason: 'Failed',
      message: `Error: ${message}`,
      source: { component: 'kubelet' },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 3,
    });
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute' }, { startedBy: 'erin' });
      return runbooks.waitForResult<PodCrashLoopResult>(workflowId);
    });
    const key = `FEATURE_FLAGS_${name.slice(-8).toUpperCase()}`;
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
    const name = await scratch('pcl-healthy');
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
    const name = await scratch('pcl-reject');
    const before = await deploymentOf(name);
    await crash(name, 'OOMKilled', ['allocating']);
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
    const name = await scratch('pcl-resume');
    const before = await deploymentOf(name);
    await crash(name, 'OOMKilled', ['allocating']);
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
