import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import * as workflows from '../../workflows';
import { recordedHistories } from '../helpers/histories';
import { workflowBundle } from '../../workers/run-worker';

/**
 * Recorded histories replayed through today's workflow code, each under the workflow id it ran
 * with: a change that would break runs already in flight (non-determinism) fails here. Record
 * with RECORD_HISTORIES=1 npm test; files are named `<workflowType>--<scenario>.json`.
 */
describe('replay of recorded histories', () => {
  const histories = recordedHistories();

  test('every registered workflow type has at least one recorded history', () => {
    const recorded = new Set(histories.map(({ workflowType }) => workflowType));
    const missing = Object.keys(workflows).filter((type) => !recorded.has(type));
    expect(missing).toEqual([]);
  });

  test('each history replays without non-determinism', async () => {
    const results = [];
    for await (const result of Worker.runReplayHistories(workflowBundle, histories)) {
      results.push({ workflowId: result.workflowId, error: result.error?.message });
    }
    expect(results).toEqual(histories.map(({ workflowId }) => ({ workflowId, error: undefined })));
  });

  test('the check can fail: a change without patched() does not replay', async () => {
    const recorded = histories.find(({ file }) => file === 'dbConnectionExhaustion--approved.json')!;
    await expect(Worker.runReplayHistory({ workflowsPath: require.resolve('../workflows/changed') }, recorded.history, recorded.workflowId)).rejects.toThrow(DeterminismViolationError);
  });
});
