import { randomUUID } from 'node:crypto';
import { AppsV1Api, AutoscalingV2Api } from '@kubernetes/client-node';
import { type RunbookClient } from '../../client';
import { previousResourcesAnnotation, previousSizeAnnotation } from '../../common/inputs/emergency-scale';
import type { EmergencyScaleResult } from '../../workflows/emergency-scale';
import { recordHistory } from '../helpers/histories';
import { deleteDeployment, restartableScript, scratchApp, scratchAutoscaler, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, statusOf } from '../helpers/kube-cluster';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, unsignedTeam } from '../helpers/testbed';
import { runFailureOf } from '../helpers/failures';
import { withRunbooks, withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';
const sizeKey = previousSizeAnnotation;
const resourcesKey = previousResourcesAnnotation;

/**
 * 紧急扩容 against the real Kubernetes API of the test bed (its pods real on the node, the controller
 * manager's HPA controller acts on HPAs). The changes run on a scratch Deployment with a scratch HPA
 * of its own (1 replica, HPA min 1 max 2, container app with requests 10m/64Mi and limits
 * 500m/256Mi), deleted at the end; the seeded short-drama-app is only planned against. The tests of
 * the second describe run in order on one Deployment: scale up, again (nothing to do), refused
 * cases, restore, restore again.
 */
describe('emergencyScale', () => {
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam),
  });
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const made: string[] = [];

  /** A scratch Deployment (1 replica) and an HPA on it, min 1 max 2. */
  async function scratchWithAutoscaler(prefix: string): Promise<string> {
    const name = unique(prefix);
    made.push(name);
    await scratchApp(kc, name, { script: restartableScript() });
    await scratchAutoscaler(kc, name);
    return name;
  }

  /** What the runbook may change: replicas, the HPA's bounds, the pod template, the runbook's annotations. */
  async function stateOf(name: string) {
    const { body: d } = await apps.readNamespacedDeployment(name, namespace);
    const hpa = await autoscaling.readNamespacedHorizontalPodAutoscaler(name, namespace).then(
      ({ body }) => ({ minReplicas: body.spec!.minReplicas, maxReplicas: body.spec!.maxReplicas }),
      (err: unknown) => {
        if (statusOf(err) === 404) return undefined;
        throw err;
      },
    );
    const annotations = d.metadata?.annotations ?? {};
    return {
      replicas: d.spec!.replicas,
      hpa,
      template: JSON.parse(JSON.stringify(d.spec!.template)) as unknown,
      resources: JSON.parse(JSON.stringify(d.spec!.template.spec!.containers[0]!.resources)) as unknown,
      records: { size: annotations[sizeKey], resources: annotations[resourcesKey] },
    };
  }

  const runIds = (names: string[]) => names.flatMap((n) => [`emergencyScale/${namespace}/${n}`, `lock/${namespace}/${n}`]);

  async function approve(runbooks: RunbookClient, workflowId: string, stepId: string, approver: string, expectedSummary: string): Promise<void> {
    const pending = await pendingOf(runbooks, workflowId, stepId);
    expect(pending.change.summary).toBe(expectedSummary);
    await runbooks.approve(workflowId, { stepId, planHash: pending.planHash, approver, reason: 'load test drill' });
  }

  afterEach(async () => {
    await terminateRuns(config.temporal, runIds(made));
  });

  afterAll(async () => {
    for (const name of made) {
      await autoscaling.deleteNamespacedHorizontalPodAutoscaler(name, namespace).catch(() => undefined); // already gone
      await deleteDeployment(kc, name);
    }
  });

  test("plan with the manual's defaults: short-drama-app to 10 replicas, its HPA raised with it; nothing changes", async () => {
    const app = 'short-drama-app';
    const { body: d } = await apps.readNamespacedDeployment(app, namespace);
    const { body: hpa } = await autoscaling.readNamespacedHorizontalPodAutoscaler(app, namespace);
    const before = { replicas: d.spec!.replicas, generation: d.metadata!.generation, annotations: d.metadata!.annotations, hpa: hpa.spec };
    const [min, max, replicas] = [hpa.spec!.minReplicas!, hpa.spec!.maxReplicas, d.spec!.replicas!];
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const started = await runbooks.startRunbook('emergencyScale', {}, { startedBy: 'erin' });
      expect(started.workflowId).toBe(`emergencyScale/${namespace}/${app}`);
      return runbooks.waitForResult<EmergencyScaleResult>(started.workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
      [
        'scale',
        true,
        `scale ${namespace}/${app} from ${replicas} to 10 replicas; HPA ${app} min ${min}, max ${max} -> min 10, max ${Math.max(max, 10)} (below its bounds it would scale ${namespace}/${app} back); the size now (${replicas} replica${replicas === 1 ? '' : 's'}, HPA ${app} min ${min}, max ${max}) recorded in ${sizeKey} for restore`,
      ],
      ['set-resources', false, 'no requests or limits asked for'],
    ]);
    expect(result.replicas).toBe(10);
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    const { body: after } = await apps.readNamespacedDeployment(app, namespace);
    const { body: hpaAfter } = await autoscaling.readNamespacedHorizontalPodAutoscaler(app, namespace);
    expect({ replicas: after.spec!.replicas, generation: after.metadata!.generation, annotations: after.metadata!.annotations, hpa: hpaAfter.spec }).toEqual(before);
  });

  test('plan on a scratch deployment with an HPA: the exact scale and resource changes; nothing changes', async () => {
    const name = await scratchWithAutoscaler('es-plan');
    const where = `${namespace}/${name}`;
    const before = await stateOf(name);
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId } = await runbooks.startRunbook('emergencyScale', { deployment: name, replicas: 3, limits: { cpu: '1', memory: '512Mi' } }, { startedBy: 'erin' });
      return runbooks.waitForResult<EmergencyScaleResult>(workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
      [
        'scale',
        true,
        `scale ${where} from 1 to 3 replicas; HPA ${name} min 1, max 2 -> min 3, max 3 (below its bounds it would scale ${where} back); the size now (1 replica, HPA ${name} min 1, max 2) recorded in ${sizeKey} for restore`,
      ],
      [
        'set-resources',
        true,
        `resources of ${where} container app: limits.cpu 500m -> 1, limits.memory 256Mi -> 512Mi (a rolling update of its pods); the values now recorded in ${resourcesKey} for restore`,
      ],
    ]);
    expect(result.before).toEqual({
      replicas: 1,
      pods: 1,
      readyPods: 1,
      autoscaler: { name, minReplicas: 1, maxReplicas: 2 },
      container: 'app',
      resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
    });
    expect(result.after).toBeUndefined();
    expect(await stateOf(name)).toEqual(before);
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain(`scale ${where} from 1 to 3 replicas`);
  });

  describe('on one scratch deployment with an HPA, in order', () => {
    let name: string;
    let where: string;
    let original: Awaited<ReturnType<typeof stateOf>>;
    const scaleUp = { replicas: 3, limits: { cpu: '1', memory: '512Mi' } };
    const sizeRecord = () => JSON.stringify({ autoscaler: { maxReplicas: 2, minReplicas: 1, name }, replicas: 1 });
    const resourcesRecord = JSON.stringify({ app: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '10m', memory: '64Mi' } } });

    beforeAll(async () => {
      name = await scratchWithAutoscaler('es-run');
      where = `${namespace}/${name}`;
      original = await stateOf(name);
      expect(original).toMatchObject({ replicas: 1, hpa: { minReplicas: 1, maxReplicas: 2 }, records: { size: undefined, resources: undefined } });
    });

    test('execute + approve: 1 -> 3 replicas with the HPA raised, limits raised, every pod ready, the size before recorded', async () => {
      const result = await withRunbooks(config, async ({ runbooks, client }) => {
        const { workflowId } = await runbooks.startRunbook('emergencyScale', { deployment: name, mode: 'execute', severity: 'P1', ...scaleUp }, { startedBy: 'erin' });
        const pending = await pendingOf(runbooks, workflowId, 'scale');
        expect(pending.allowedRoles).toEqual(['l2', 'manager', 'cto']);
        expect(pending.approvers.sort()).toEqual(['bob', 'carol']);
        const decision = { stepId: 'scale', planHash: pending.planHash, reason: 'traffic spike' };
        await expect(runbooks.approve(workflowId, { ...decision, approver: 'erin' })).rejects.toThrow('four-eyes rule: erin started this run and cannot approve its steps');
        await expect(runbooks.approve(workflowId, { ...decision, approver: 'dave' })).rejects.toThrow('dave (l1) may not decide "scale": needs one of l2, manager, cto');
        expect((await stateOf(name)).replicas).toBe(1);
        await runbooks.approve(workflowId, { ...decision, approver: 'bob' });
        await approve(
          runbooks,
          workflowId,
          'set-resources',
          'carol',
          `resources of ${where} container app: limits.cpu 500m -> 1, limits.memory 256Mi -> 512Mi (a rolling update of its pods); the values now recorded in ${resourcesKey} for restore`,
        );
        const finished = await runbooks.waitForResult<EmergencyScaleResult>(workflowId);
        await recordHistory(client.workflow.getHandle(workflowId), 'scale-approved');
        return finished;
      });
      expect(result.outcome).toBe('completed');
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
        ['scale', expect.stringMatching(new RegExp(`^replicas 1 -> 3; HPA ${name} min 1, max 2 -> min 3, max 3; 3/3 ready, 3 available in \\d+s$`))],
        ['set-resources', expect.stringMatching(/^limits\.cpu 500m -> 1, limits\.memory 256Mi -> 512Mi; rollout complete: 3\/3 ready, 3 available in \d+s$/)],
      ]);
      expect(result.after).toEqual({
        replicas: 3,
        pods: 3,
        readyPods: 3,
        autoscaler: { name, minReplicas: 3, maxReplicas: 3 },
        container: 'app',
        resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '1', memory: '512Mi' } },
        ok: true,
      });
      expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
        stepId: 'verify',
        detail: `verified: ${namespace}/${name} at 3 replicas or more, every pod Ready (3 of 3 pods are Ready at 3 replicas (HPA ${name} min 3, max 3)); container app with the raised resources (it has requests cpu=10m memory=64Mi, limits cpu=1 memory=512Mi)`,
      });
      expect(await stateOf(name)).toMatchObject({
        replicas: 3,
        hpa: { minReplicas: 3, maxReplicas: 3 },
        resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '1', memory: '512Mi' } },
        records: { size: sizeRecord(), resources: resourcesRecord },
      });
      const markdown = await readBucketText(result.report!.markdownKey);
      expectIncidentReport(markdown);
      expect(markdown).toContain('replicas 1 -> 3');
    });

    test('the same run again: nothing to change, nobody is asked', async () => {
      const before = await stateOf(name);
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('emergencyScale', { deployment: name, mode: 'execute', ...scaleUp }, { startedBy: 'erin' });
        return runbooks.waitForResult<EmergencyScaleResult>(workflowId);
      });
      expect(result.outcome).toBe('nothing-to-do');
      expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
        ['scale', false, `${where} already runs 3 replicas; HPA ${name} already holds 3 (min 3, max 3)`],
        ['set-resources', false, 'container app of ' + where + ' already has requests cpu=10m memory=64Mi, limits cpu=1 memory=512Mi'],
      ]);
      expect(result.timeline.map((e) => e.event)).not.toContain('requested');
      expect(result.after).toBeUndefined();
      expect(await stateOf(name)).toEqual(before);
    });

    test('a bigger scale-up keeps the size from before the first one (plan)', async () => {
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('emergencyScale', { deployment: name, replicas: 4 }, { startedBy: 'erin' });
        return runbooks.waitForResult<EmergencyScaleResult>(workflowId);
      });
      expect(result.plan.find((p) => p.stepId === 'scale')?.change.summary).toBe(
        `scale ${where} from 3 to 4 replicas; HPA ${name} min 3, max 3 -> min 4, max 4 (below its bounds it would scale ${where} back); the size before the first scale-up (1 replica, HPA ${name} min 1, max 2) stays recorded in ${sizeKey}`,
      );
    });

    test('refused before anyone is asked: scaling down, lowering a limit', async () => {
      const before = await stateOf(name);
      await withWorker(config, async ({ client, taskQueue }) => {
        const down = await client.workflow.start('emergencyScale', { taskQueue, workflowId: `es-down-${randomUUID()}`, args: [{ deployment: name, replicas: 2, mode: 'execute' }] });
        const failure = await runFailureOf(down);
        expect(failure.message).toBe(
          `emergency scale refused: ${where} runs 3 replicas and 2 would scale it down; emergencyScale only scales up (restore: true goes back to the size recorded before a scale-up)`,
        );
        expect([failure.type, failure.nonRetryable]).toEqual(['Refused', true]);
        expect(await scheduledActivityTypes(down)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed', 'snapshotNamespaceConfig', 'listPodSummaries', 'listHorizontalPodAutoscalers']);

        const lower = await client.workflow.start('emergencyScale', {
          taskQueue,
          workflowId: `es-lower-${randomUUID()}`,
          args: [{ deployment: name, replicas: 3, limits: { memory: '256Mi' }, requests: { cpu: '2' }, mode: 'execute' }],
        });
        const refused = await runFailureOf(lower);
        expect(refused.message).toBe(`resource change refused for ${where} container app: limits.memory 256Mi would lower the current 512Mi; requests.cpu 2 would be above limits.cpu 1`);
        expect([refused.type, refused.nonRetryable]).toEqual(['Refused', true]);
        expect(await scheduledActivityTypes(lower)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed', 'snapshotNamespaceConfig', 'listPodSummaries', 'listHorizontalPodAutoscalers']);
      });
      expect(await stateOf(name)).toEqual(before);
    });

    test('restore + approve: exactly the replicas, HPA bounds and resources from before; the records removed; again: nobody is asked', async () => {
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('emergencyScale', { deployment: name, restore: true, mode: 'execute' }, { startedBy: 'erin' });
        await approve(
          runbooks,
          workflowId,
          'restore-size',
          'bob',
          `restore ${where} to the size recorded before the emergency scale-up: HPA ${name} min 3, max 3 -> min 1, max 2; replicas 3 -> 1; then remove ${sizeKey}`,
        );
        await approve(
          runbooks,
          workflowId,
          'restore-resources',
          'carol',
          `restore the resources of ${where} recorded before the emergency raise: container app: limits.cpu 1 -> 500m, limits.memory 512Mi -> 256Mi; then remove ${resourcesKey}`,
        );
        return runbooks.waitForResult<EmergencyScaleResult>(workflowId);
      });
      expect(result.outcome).toBe('completed');
      expect(result.replicas).toBe(1);
      expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
        ['restore-size', expect.stringMatching(new RegExp(`^HPA ${name} min 3, max 3 -> min 1, max 2; replicas 3 -> 1; 1/1 ready, 1 available in \\d+s; ${sizeKey} removed$`))],
        [
          'restore-resources',
          expect.stringMatching(new RegExp(`^container app: limits\\.cpu 1 -> 500m, limits\\.memory 512Mi -> 256Mi; rollout complete: 1/1 ready, 1 available in \\d+s; ${resourcesKey} removed$`)),
        ],
      ]);
      expect(result.after).toMatchObject({ replicas: 1, pods: 1, readyPods: 1, autoscaler: { minReplicas: 1, maxReplicas: 2 }, ok: true });
      expect(result.timeline.find((e) => e.event === 'verified')?.detail).toMatch(/^verified: \S+ back at 1 replica, every pod Ready .*; container app with the recorded resources/);
      // Everything the scale-up changed is as it was: replicas, HPA, pod template, no records.
      expect(await stateOf(name)).toEqual(original);

      const again = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId } = await runbooks.startRunbook('emergencyScale', { deployment: name, restore: true, mode: 'execute' }, { startedBy: 'erin' });
        return runbooks.waitForResult<EmergencyScaleResult>(workflowId);
      });
      expect(again.outcome).toBe('nothing-to-do');
      expect(again.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
        ['restore-size', false, `no size recorded in ${sizeKey} of ${where}: no emergency scale-up to restore`],
        ['restore-resources', false, `no resources recorded in ${resourcesKey} of ${where}: no raise to restore`],
      ]);
      expect(again.timeline.map((e) => e.event)).not.toContain('requested');
      expect(await stateOf(name)).toEqual(original);
    });
  });

  test('bad input and kube-system: clear non-retryable errors before anything is touched', async () => {
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('emergencyScale', { replicas: 101 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for emergencyScale: replicas: at most 100 replicas (the emergency cap)',
      );
      await expect(runbooks.startRunbook('emergencyScale', { restore: true, replicas: 3 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for emergencyScale: restore: restore puts back what the scale-up recorded: give no replicas, container, requests or limits with it',
      );
      const bad = await client.workflow.start('emergencyScale', {
        taskQueue,
        workflowId: `es-bad-${randomUUID()}`,
        args: [{ deployment: 'Bad_Name', replicas: 2.5, limits: { cpu: 'lots' }, waitTimeoutSeconds: 5, mode: 'execute' }],
      });
      const failure = await runFailureOf(bad);
      expect(failure.message).toBe(
        'invalid input for emergencyScale: deployment: expected a Kubernetes name (lowercase letters, digits, -); replicas: expected a whole number of replicas; limits.cpu: expected a CPU quantity above 0 and at most 16, such as 500m or 2; waitTimeoutSeconds: at least 10 seconds',
      );
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(await scheduledActivityTypes(bad)).toEqual([]);

      const system = await client.workflow.start('emergencyScale', {
        taskQueue,
        workflowId: `es-system-${randomUUID()}`,
        args: [{ namespace: 'kube-system', deployment: 'coredns', mode: 'execute' }],
      });
      const refused = await runFailureOf(system);
      expect(String(refused.cause?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(system)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
  });
});
