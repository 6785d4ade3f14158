import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { createRunbookClient, type RunbookClient } from '../client';
import { lockWorkflowId } from '../common/target-lock-messages';
import type { RunbookResultBase } from '../common/runbook';
import { waitUntil } from '../scripts/testbed/processes';
import { keyedApprovers } from './helpers/approver-keys';
import { pendingOf, terminateRuns } from './helpers/runbook-runs';
import { TestTargets } from './helpers/test-target';
import { testbedConfig, testbedEnv } from './helpers/testbed';
import { withWorker } from './helpers/worker';
import { nextVersionMarker } from './workflows/next-version';
import { extraCatalog } from './workflows/test-catalog';

/**
 * Safe upgrades (README "Safe upgrades"): two workers on one task queue, each a version of the
 * same Worker Deployment, the second with a changed kernelTestRunbook. A run that waits for
 * approval when the new version becomes current finishes on the code it started with (PINNED);
 * a run started after the switch runs the new code; the target lock both share moves to the new
 * version (AUTO_UPGRADE). The switch is the documented `temporal worker deployment
 * set-current-version`, run with the test bed's Temporal CLI.
 */
describe('Worker Versioning', () => {
  const targets = new TestTargets();
  const team = keyedApprovers({ bob: ['l2'], erin: ['l1', 'l2'] });
  const deploymentName = `runbook-worker-test-${randomUUID().slice(0, 8)}`;
  const taskQueue = `test-${randomUUID()}`;
  const versionConfig = (buildId: string) =>
    testbedConfig({
      RUNBOOK_APPROVERS: JSON.stringify(team.approvers),
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKER_DEPLOYMENT_NAME: deploymentName,
      WORKER_BUILD_ID: buildId,
      // The test runbook's target lives in this process; no cluster needed.
      KUBECONFIG: undefined,
      KUBERNETES_AUDIT_LOG: undefined,
    });
  const v1 = versionConfig('v1');
  const v2 = versionConfig('v2');
  const target = `versioning/${randomUUID()}`;
  const started: string[] = [];

  afterAll(() => terminateRuns(v1.temporal, [...started, lockWorkflowId(target)]));

  async function describeDeployment(client: Client) {
    const { workerDeploymentInfo } = await client.workflowService.describeWorkerDeployment({ namespace: v1.temporal.namespace, deploymentName });
    return workerDeploymentInfo!;
  }

  /** Makes the version current as an operator would, once its worker has polled, and waits until the task queue routes by it. */
  async function setCurrentVersion(client: Client, buildId: string): Promise<void> {
    await waitUntil(`${deploymentName}.${buildId} registered by its worker's polls`, async () =>
      (await describeDeployment(client)).versionSummaries!.some((summary) => summary.deploymentVersion?.buildId === buildId),
    );
    const env = testbedEnv();
    // Not execFileSync: the workers in this process go on meanwhile.
    await promisify(execFile)(env.TESTBED_TEMPORAL_CLI!, [
      'worker',
      'deployment',
      'set-current-version',
      '--address',
      env.TEMPORAL_ADDRESS!,
      '--deployment-name',
      deploymentName,
      '--build-id',
      buildId,
      '--yes',
    ]);
    // The task queue's own view (matching's), which routes the next task: the deployment's record may change first.
    await waitUntil(`${deploymentName}.${buildId} current on the task queue`, async () => {
      const { versioningInfo } = await client.workflowService.describeTaskQueue({
        namespace: v1.temporal.namespace,
        taskQueue: { name: taskQueue },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      });
      return versioningInfo?.currentDeploymentVersion?.buildId === buildId;
    });
  }

  /** The build id of each workflow task completion in the run's history, in order: which version's code ran it. */
  async function buildIdsOf(handle: WorkflowHandle): Promise<string[]> {
    return ((await handle.fetchHistory()).events ?? []).flatMap((e) => e.workflowTaskCompletedEventAttributes?.deploymentVersion?.buildId ?? []);
  }

  async function approve(runbooks: RunbookClient, workflowId: string, stepId: string): Promise<void> {
    const pending = await pendingOf(runbooks, workflowId, stepId);
    await runbooks.approve(workflowId, { stepId, planHash: pending.planHash, approver: 'bob', reason: `${stepId} is fine` });
  }

  test('a run waiting for approval finishes on its version after the next one becomes current; new runs and the shared target lock use the new one', async () => {
    const workerOptions = { activities: targets.activities() };
    const steps = (...ids: string[]) => ids.map((id) => ({ id, title: `Step ${id}` }));
    await withWorker(
      v1,
      async ({ client }) => {
        const runbooks = createRunbookClient({ client, taskQueue, catalog: extraCatalog, signer: team.signer });
        const startRun = async (stepIds: string[]) => {
          const { workflowId } = await runbooks.startRunbook('kernelTestRunbook', { mode: 'execute', target, steps: steps(...stepIds) }, { startedBy: 'erin' });
          started.push(workflowId);
          return workflowId;
        };
        await setCurrentVersion(client, 'v1');
        // The old run: its first step applied under the target lock (which starts on v1), its second waits for approval.
        const oldRun = await startRun(['first', 'second']);
        await approve(runbooks, oldRun, 'first');
        await pendingOf(runbooks, oldRun, 'second');
        const lock = client.workflow.getHandle(lockWorkflowId(target));
        expect(new Set(await buildIdsOf(lock))).toEqual(new Set(['v1']));

        await withWorker(
          v2,
          async () => {
            await setCurrentVersion(client, 'v2');
            await approve(runbooks, oldRun, 'second');
            const oldResult = await runbooks.waitForResult<RunbookResultBase>(oldRun);
            expect(oldResult.outcome).toBe('completed');
            // Finished by v1's code: no marker, and every workflow task of the run was v1's.
            expect(oldResult.summary).not.toContain(nextVersionMarker);
            expect(new Set(await buildIdsOf(client.workflow.getHandle(oldRun)))).toEqual(new Set(['v1']));
            const oldDescribed = await client.workflow.getHandle(oldRun).describe();
            expect(oldDescribed.raw.workflowExecutionInfo?.versioningInfo?.behavior).toBe(temporal.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
            // The lock moved on to v2 at its next task (the old run's second request), though a v1 run asked.
            expect((await buildIdsOf(lock)).at(-1)).toBe('v2');

            const newRun = await startRun(['third']);
            await approve(runbooks, newRun, 'third');
            const newResult = await runbooks.waitForResult<RunbookResultBase>(newRun);
            expect(newResult.outcome).toBe('completed');
            expect(newResult.summary).toContain(nextVersionMarker);
            expect(new Set(await buildIdsOf(client.workflow.getHandle(newRun)))).toEqual(new Set(['v2']));
          },
          { ...workerOptions, workflowsPath: require.resolve('./workflows/next-version') },
        );
      },
      { ...workerOptions, workflowsPath: require.resolve('./workflows') },
    );
    expect(targets.applies.map((a) => a.stepId)).toEqual(['first', 'second', 'third']);
  });
});
