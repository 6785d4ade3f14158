import type { Client } from '@temporalio/client';
import { scheduleIdFor } from '../../common/schedule-ids';
import { waitUntil } from '../../scripts/testbed/processes';

/**
 * Starts `workflowType` the way production does, from a real Temporal Schedule under this
 * deployment's schedule id (paused, triggered once), and returns the run it started. The
 * schedule is deleted again by `remove`.
 */
export async function startBySchedule(client: Client, options: { taskQueue: string; workflowType: string; workflowId: string; args: unknown[] }) {
  const scheduleId = scheduleIdFor(options.taskQueue, options.workflowType);
  await client.schedule
    .getHandle(scheduleId)
    .delete()
    .catch(() => undefined); // left by an earlier failed run
  const handle = await client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: '365 days' }] },
    action: { type: 'startWorkflow', workflowType: options.workflowType, taskQueue: options.taskQueue, workflowId: options.workflowId, args: options.args },
    state: { paused: true, note: 'test: triggered by hand' },
  });
  await handle.trigger();
  let run: { workflowId: string; firstExecutionRunId: string } | undefined;
  await waitUntil(`schedule ${scheduleId} started a run`, async () => {
    const { info } = await handle.describe();
    run = [...info.runningActions, ...info.recentActions.map((r) => r.action)][0]?.workflow;
    return run !== undefined;
  });
  return { scheduleId, workflowId: run!.workflowId, runId: run!.firstExecutionRunId, remove: () => handle.delete() };
}
