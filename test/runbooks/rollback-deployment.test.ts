import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { AppsV1Api, type V1PodTemplateSpec } from '@kubernetes/client-node';
import type { RollbackDeploymentResult } from '../../workflows/rollback-deployment';
import { applyObjects } from '../../scripts/testbed/kubernetes-apply';
import { appDeployment, appImage, appReleases } from '../../scripts/testbed/kubernetes-seed';
import { connectClient } from '../../config/temporal-connection';
import { recordHistory } from '../helpers/histories';
import { deleteDeployment, restartableScript, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, testbedRealNode, waitForRollout } from '../helpers/kube-cluster';
import { patchDeployment } from '../helpers/kube-objects';
import { expectIncidentReport, pendingOf, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, unsignedTeam } from '../helpers/testbed';
import { withRunbooks, withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';
const app = 'short-drama-app';
const target = `${namespace}/${app}`;
const workflowId = `rollbackDeployment/${target}`;
const [oldRelease, seededRelease] = appReleases; // 1.4.1, 1.4.2 (the seeded current one)
const realNode = testbedRealNode();
const image = (release: string) => appImage(release, realNode);
const revisionAnnotation = 'deployment.kubernetes.io/revision';

/**
 * 快速回滚 against the real Kubernetes API of the test bed, on the seeded short-drama-app (its two
 * pods on the real node). Rolling back renumbers revisions (the rolled-back ReplicaSet gets the next number),
 * so revisions are looked up by release, and the seeded release is put back after each test.
 */
describe('rollbackDeployment', () => {
  const config = testbedConfig({
    RUNBOOK_APPROVERS: JSON.stringify(unsignedTeam),
  });
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);

  async function appState() {
    const { body } = await apps.readNamespacedDeployment(app, namespace);
    return {
      generation: body.metadata!.generation,
      revision: Number(body.metadata!.annotations![revisionAnnotation]),
      image: body.spec!.template.spec!.containers[0]!.image,
      template: JSON.parse(JSON.stringify(body.spec!.template)) as V1PodTemplateSpec,
    };
  }

  /** The app's ReplicaSets by release: revision number and template. */
  async function revisions() {
    const { body } = await apps.listNamespacedReplicaSet(namespace, undefined, undefined, undefined, undefined, `app=${app}`);
    const byRelease = (release: string) => {
      const rs = body.items.find((x) => x.spec?.template?.spec?.containers[0]?.image === image(release));
      if (!rs) throw new Error(`no ReplicaSet of ${app} runs ${image(release)}`);
      return { revision: Number(rs.metadata!.annotations![revisionAnnotation]), template: JSON.parse(JSON.stringify(rs.spec!.template)) as V1PodTemplateSpec };
    };
    return { old: byRelease(oldRelease), seeded: byRelease(seededRelease), all: body.items.map((x) => Number(x.metadata!.annotations![revisionAnnotation])).sort((a, b) => a - b) };
  }

  /** As the test bed's seed does on every start: server-side apply of the seeded release, then wait for the rollout. */
  async function restoreSeededApp(): Promise<void> {
    if ((await appState()).image !== image(seededRelease)) await applyObjects(kc, [appDeployment(seededRelease, realNode)]);
    await waitForRollout(kc, namespace, app);
  }

  /** The run, and the target lock when this file's worker started it (another session's lock is left alone). */
  async function cleanUpRuns(): Promise<void> {
    await terminateRuns(config.temporal, [workflowId]);
    const { client, close } = await connectClient(config.temporal);
    try {
      const lock = client.workflow.getHandle(`lock/${target}`);
      const info = await lock.describe().catch(() => undefined);
      if (info?.status.name === 'RUNNING' && info.taskQueue === config.temporal.taskQueue) await lock.terminate('test cleanup');
    } finally {
      await close();
    }
  }

  beforeAll(restoreSeededApp);
  afterEach(async () => {
    await cleanUpRuns();
    await restoreSeededApp();
  });

  test('plan: the rollout history and the exact rollback to the previous revision; nothing changes', async () => {
    const before = await appState();
    const { old, seeded } = await revisions();
    expect(before).toMatchObject({ image: image(seededRelease), revision: seeded.revision });
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const started = await runbooks.startRunbook('rollbackDeployment', {}, { startedBy: 'erin' });
      expect(started.workflowId).toBe(workflowId);
      return runbooks.waitForResult<RollbackDeploymentResult>(started.workflowId);
    });
    expect(result.outcome).toBe('planned');
    expect(result.plan.map((p) => [p.stepId, p.change.needed, p.change.summary])).toEqual([
      ['rollback', true, `roll back ${target} from revision ${seeded.revision} (app=${image(seededRelease)}) to revision ${old.revision} (app=${image(oldRelease)})`],
    ]);
    expect(result.currentRevision).toBe(seeded.revision);
    expect(result.revisions.map((r) => [r.revision, r.images, r.current])).toEqual(
      expect.arrayContaining([
        [old.revision, [`app=${image(oldRelease)}`], false],
        [seeded.revision, [`app=${image(seededRelease)}`], true],
      ]),
    );
    expect(result.revisions.every((r) => typeof r.ageSeconds === 'number' && r.ageSeconds >= 0)).toBe(true);
    expect(result.before).toMatchObject({ revision: seeded.revision, pods: 2, readyPods: 2 });
    expect(result.rollback).toMatchObject({ fromRevision: seeded.revision, toRevision: old.revision, toImages: [`app=${image(oldRelease)}`] });
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect(result.after).toBeUndefined();
    expect(await appState()).toEqual(before);
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain(`to revision ${old.revision} (app=${image(oldRelease)})`);
  });

  test('execute on the revision already running: nothing to do, nobody is asked', async () => {
    const before = await appState();
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId: id } = await runbooks.startRunbook('rollbackDeployment', { mode: 'execute', toRevision: before.revision }, { startedBy: 'erin' });
      return runbooks.waitForResult<RollbackDeploymentResult>(id);
    });
    expect(result.outcome).toBe('nothing-to-do');
    expect(result.plan.map((p) => [p.change.needed, p.change.summary])).toEqual([
      [false, `no rollback: ${target} already runs the template of revision ${before.revision} (app=${image(seededRelease)})`],
    ]);
    expect(result.timeline.map((e) => e.event)).not.toContain('requested');
    expect(await appState()).toEqual(before);
  });

  test("as a child workflow under an id the parent chooses (monthlyReview's emergency-plan check): plan only", async () => {
    const before = await appState();
    const { old } = await revisions();
    const parentId = `monthly-check-${randomUUID()}`;
    const { childId, child } = await withWorker(
      config,
      async ({ client, taskQueue }) =>
        client.workflow.execute('rollbackPlanParent', { taskQueue, workflowId: parentId, args: [{ namespace, deployment: app }] }) as Promise<{ childId: string; child: RollbackDeploymentResult }>,
      { workflowsPath: require.resolve('../workflows/rollback-plan-parent') },
    );
    expect(childId).toBe(`${parentId}/rollbackDeployment-plan`);
    expect(child.outcome).toBe('planned');
    expect(child.plan.find((p) => p.change.needed)?.change.summary).toContain(`to revision ${old.revision} (app=${image(oldRelease)})`);
    // The report is keyed by the id the parent chose.
    expect(child.report?.markdownKey).toContain(`reports/rollbackDeployment/`);
    expect(child.report?.markdownKey).toContain(`${parentId}_rollbackDeployment-plan-`);
    expect(await appState()).toEqual(before);
  });

  test('a revision that is not in the history is refused clearly before anyone is asked', async () => {
    const before = await appState();
    const { all } = await revisions();
    await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId: id } = await runbooks.startRunbook('rollbackDeployment', { mode: 'execute', toRevision: 99 }, { startedBy: 'erin' });
      const handle = client.workflow.getHandle(id);
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const failure = (error as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe(`rollback refused: deployments.apps/${app} in namespace ${namespace} has no revision 99 (revisions: ${all.join(', ')}; current ${before.revision})`);
      expect([failure.type, failure.nonRetryable]).toEqual(['NotFound', true]);
      // Neither a dry run nor a rollback was scheduled.
      expect(await scheduledActivityTypes(handle)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed', 'getRolloutHistory']);
    });
    expect(await appState()).toEqual(before);
  });

  test('bad input: a clear non-retryable error before anything is touched', async () => {
    const before = await appState();
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('rollbackDeployment', { toRevision: 0 }, { startedBy: 'erin' })).rejects.toThrow(
        'invalid input for rollbackDeployment: toRevision: revisions start at 1; leave toRevision out to roll back to the previous revision',
      );
      const handle = await client.workflow.start('rollbackDeployment', {
        taskQueue,
        workflowId: `rbd-bad-${randomUUID()}`,
        args: [{ deployment: 'Short_Drama', toRevision: 1.5, waitTimeoutSeconds: 5, mode: 'execute' }],
      });
      const error = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const failure = (error as WorkflowFailedError).cause as Error & { type?: string; nonRetryable?: boolean };
      expect(failure.message).toBe(
        'invalid input for rollbackDeployment: deployment: expected a Kubernetes name (lowercase letters, digits, -); toRevision: expected a whole revision number, such as 3; waitTimeoutSeconds: at least 10 seconds',
      );
      expect([failure.type, failure.nonRetryable]).toEqual(['InvalidInput', true]);
      expect(await scheduledActivityTypes(handle)).toEqual([]);

      const system = await client.workflow.start('rollbackDeployment', { taskQueue, workflowId: `rbd-bad-${randomUUID()}`, args: [{ namespace: 'kube-system', mode: 'execute' }] });
      const refused = await system.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(String(((refused as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(system)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
    expect(await appState()).toEqual(before);
  });

  test('execute + reject: the deployment is left unchanged', async () => {
    const before = await appState();
    const result = await withRunbooks(config, async ({ runbooks }) => {
      const { workflowId: id } = await runbooks.startRunbook('rollbackDeployment', { mode: 'execute' }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, id, 'rollback');
      await runbooks.reject(id, { stepId: 'rollback', planHash: pending.planHash, approver: 'carol', reason: 'the release is fine, the alert was noise' });
      return runbooks.waitForResult<RollbackDeploymentResult>(id);
    });
    expect(result.outcome).toBe('rejected');
    expect(result.timeline.filter((e) => e.event === 'skipped').map((e) => [e.stepId, e.detail])).toEqual([['rollback', 'rejected']]);
    expect(result.timeline.filter((e) => e.event === 'decided').map((e) => [e.by, e.role, e.detail])).toEqual([['carol', 'manager', 'rejected']]);
    expect(result.after).toBeUndefined();
    expect(await appState()).toEqual(before);
  });

  test('a rollout that never completes: the wait ends at waitTimeoutSeconds, the run fails with the evidence', async () => {
    // A scratch app whose revision 2 cannot be scheduled (no such node), between revisions 1 and 3 that can (3 is 1 again).
    const name = unique('rbd-stuck');
    const nodeType = (type: string | null) => ({ spec: { template: { spec: { nodeSelector: { type } } } } });
    try {
      await scratchApp(kc, name, { script: restartableScript() });
      await patchDeployment(kc, namespace, name, nodeType('nowhere'));
      await patchDeployment(kc, namespace, name, nodeType(null));
      await waitForRollout(kc, namespace, name);
      const result = await withRunbooks(config, async ({ runbooks }) => {
        const { workflowId: id } = await runbooks.startRunbook('rollbackDeployment', { deployment: name, mode: 'execute', waitTimeoutSeconds: 10 }, { startedBy: 'erin' });
        const pending = await pendingOf(runbooks, id, 'rollback');
        expect(pending.change.summary).toBe(`roll back ${namespace}/${name} from revision 3 (app=${image(seededRelease)}) to revision 2 (app=${image(seededRelease)})`);
        await runbooks.approve(id, { stepId: 'rollback', planHash: pending.planHash, approver: 'bob', reason: 'drill' });
        return runbooks.waitForResult<RollbackDeploymentResult>(id);
      });
      expect(result.outcome).toBe('failed');
      expect(result.timeline.filter((e) => e.event === 'failed').map((e) => [e.stepId, e.detail])).toEqual([
        [
          'rollback',
          expect.stringMatching(
            new RegExp(`^rolled back to revision 2, but the rollout did not complete within 10s: .*deployments.apps/${name} in namespace ${namespace}: rollout not complete after \\d+s`),
          ),
        ],
      ]);
      expect(result.rollout).toBeUndefined();
      expect(result.after).toMatchObject({ revision: 4, pods: 1, readyPods: 0, otherPods: 1, available: false });
      const markdown = await readBucketText(result.report!.markdownKey);
      expect(markdown).toContain('rollback failed');
    } finally {
      await terminateRuns(config.temporal, [`rollbackDeployment/${namespace}/${name}`, `lock/${namespace}/${name}`]);
      await deleteDeployment(kc, name);
    }
  });

  test('execute + approve: rolled back to the 1.4.1 revision, rollout waited for, pods verified, report written', async () => {
    const before = await appState();
    const { old, seeded } = await revisions();
    const result = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId: id } = await runbooks.startRunbook('rollbackDeployment', { mode: 'execute', severity: 'P1', toRevision: old.revision }, { startedBy: 'erin' });
      const pending = await pendingOf(runbooks, id, 'rollback');
      expect(pending.change.summary).toBe(`roll back ${target} from revision ${seeded.revision} (app=${image(seededRelease)}) to revision ${old.revision} (app=${image(oldRelease)})`);
      expect(pending.allowedRoles).toEqual(['l2', 'manager', 'cto']);
      expect(pending.approvers.sort()).toEqual(['bob', 'carol']);
      const decision = { stepId: 'rollback', planHash: pending.planHash, reason: 'errors since 1.4.2' };
      await expect(runbooks.approve(id, { ...decision, approver: 'erin' })).rejects.toThrow('four-eyes rule: erin started this run and cannot approve its steps');
      await expect(runbooks.approve(id, { ...decision, approver: 'dave' })).rejects.toThrow('dave (l1) may not decide "rollback": needs one of l2, manager, cto');
      expect((await appState()).generation).toBe(before.generation);
      await runbooks.approve(id, { ...decision, approver: 'bob' });
      const finished = await runbooks.waitForResult<RollbackDeploymentResult>(id);
      await recordHistory(client.workflow.getHandle(id), 'approved');
      return finished;
    });
    expect(result.outcome).toBe('completed');
    // The controller gives the rolled-back ReplicaSet the next revision number, as `kubectl rollout undo` does.
    const now = seeded.revision + 1;
    expect(result.timeline.filter((e) => e.event === 'applied').map((e) => [e.stepId, e.detail])).toEqual([
      ['rollback', expect.stringMatching(new RegExp(`^rolled back to revision ${old.revision} \\(now revision ${now}\\); rollout complete in \\d+s \\(2 ready, 2/2 available\\)$`))],
    ]);
    expect(result.rollout).toMatchObject({ complete: true, revision: now, readyReplicas: 2, availableReplicas: 2 });
    expect(result.after).toEqual({ revision: now, replicaSet: expect.any(String), images: [`app=${image(oldRelease)}`], pods: 2, readyPods: 2, otherPods: 0, available: true });
    expect(result.timeline.find((e) => e.event === 'verified')).toMatchObject({
      stepId: 'verify',
      detail: `verified: short-drama-prod/short-drama-app on the images of revision ${old.revision} (app=${image(oldRelease)}) (revision ${now} runs app=${image(oldRelease)}); every pod of that revision Ready (2 of 2 pods of revision ${now} are Ready)`,
    });
    const after = await appState();
    expect(after).toMatchObject({ image: image(oldRelease), revision: now });
    const expected = old.template;
    delete expected.metadata!.labels!['pod-template-hash'];
    expect(after.template).toEqual(expected);
    const markdown = await readBucketText(result.report!.markdownKey);
    expectIncidentReport(markdown);
    expect(markdown).toContain(
      `rolled back from revision ${seeded.revision} (app=${image(seededRelease)}) to the template of revision ${old.revision} (app=${image(oldRelease)}), now revision ${now}`,
    );

    // Back to the seeded release (afterEach does the same; checked here so a broken restore fails).
    await restoreSeededApp();
    expect(await appState()).toMatchObject({ image: image(seededRelease), template: before.template });
  });
});
