import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { temporal } from '@temporalio/proto';

export const historiesDir = resolve(__dirname, '..', 'histories');

type History = temporal.api.history.v1.IHistory;

/** A recorded history: its file is `<workflowType>--<scenario>.json`; it replays under the workflow id it ran with. */
export interface RecordedHistory {
  file: string;
  workflowType: string;
  scenario: string;
  workflowId: string;
  history: History;
}

const fileName = /^([a-zA-Z]+)--([a-z0-9]+(?:-[a-z0-9]+)*)\.json$/;

function startedOf(history: History) {
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  if (!started?.workflowType?.name || !started.workflowId) throw new Error('a recorded history starts with WorkflowExecutionStarted, naming the workflow type and id');
  return { workflowType: started.workflowType.name, workflowId: started.workflowId };
}

/** Every history under test/histories, checked against the naming scheme. */
export function recordedHistories(): RecordedHistory[] {
  return readdirSync(historiesDir)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => {
      const history = historyFromJSON(JSON.parse(readFileSync(join(historiesDir, file), 'utf8')));
      const { workflowType, workflowId } = startedOf(history);
      const [, named, scenario = ''] = fileName.exec(file) ?? [];
      if (named !== workflowType) throw new Error(`${file}: a recorded history is named <workflowType>--<kebab-case-scenario>.json, here ${workflowType}--<scenario>.json`);
      return { file, workflowType, scenario, workflowId, history };
    });
}

/**
 * With RECORD_HISTORIES=1, saves a finished run's history as `<workflowType>--<scenario>.json`
 * for the replay test, which then guards running workflows against incompatible code changes.
 * Recorded once, committed; the scenario is a few kebab-case words ("approved", "signed-decisions").
 */
export async function recordHistory(handle: WorkflowHandle, scenario: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  const file = `${startedOf(history).workflowType}--${scenario}.json`;
  if (!fileName.test(file)) throw new Error(`${file} does not follow <workflowType>--<kebab-case-scenario>.json`);
  mkdirSync(historiesDir, { recursive: true });
  // The same proto3 JSON the Temporal CLI and UI export, so histories from real runs can be added too.
  writeFileSync(join(historiesDir, file), `${historyToJSON(history)}\n`);
}
