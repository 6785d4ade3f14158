import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { temporal } from '@temporalio/proto';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import * as workflows from '../../workflows';
import { historiesDir } from '../helpers/histories';

type History = temporal.api.history.v1.IHistory;

function workflowTypeOf(history: History): string | undefined {
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? undefined;
}

/**
 * Recorded histories replayed through today's workflow code: a change that would break runs
 * already in flight (non-determinism) fails here. Record with RECORD_HISTORIES=1 npm test.
 */
describe('replay of recorded histories', () => {
  const files = readdirSync(historiesDir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  // A file name's "__" stands for "/": runs whose code uses their own workflow id (e.g. for a
  // child's id) must replay under the id they were recorded with.
  const histories = files.map((file) => ({ workflowId: file.replace(/\.json$/, '').replace(/__/g, '/'), history: JSON.parse(readFileSync(join(historiesDir, file), 'utf8')) as History }));

  test('every registered workflow type has at least one recorded history', () => {
    const recorded = new Set(histories.map(({ history }) => workflowTypeOf(history)));
    const missing = Object.keys(workflows).filter((type) => !recorded.has(type));
    expect(missing).toEqual([]);
  });

  test('each history replays without non-determinism', async () => {
    const results = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: require.resolve('../../workflows') }, histories)) {
      results.push({ workflowId: result.workflowId, error: result.error?.message });
    }
    expect(results).toEqual(histories.map(({ workflowId }) => ({ workflowId, error: undefined })));
  });

  test('the check can fail: a change without patched() does not replay', async () => {
    const recorded = histories.find(({ workflowId }) => workflowId === 'db-connection-exhaustion-approved')!;
    await expect(Worker.runReplayHistory({ workflowsPath: require.resolve('../workflows/changed') }, recorded.history, recorded.workflowId)).rejects.toThrow(DeterminismViolationError);
  });
});
