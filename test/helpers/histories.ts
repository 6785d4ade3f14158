import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';

export const historiesDir = resolve(__dirname, '..', 'histories');

/**
 * With RECORD_HISTORIES=1, saves a finished run's history for the replay test, which then
 * guards running workflows against incompatible code changes. Recorded once, committed. A "__"
 * in the name stands for "/" in the workflow id the replay uses.
 */
export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  mkdirSync(historiesDir, { recursive: true });
  // The same proto3 JSON the Temporal CLI and UI export, so histories from real runs can be added too.
  writeFileSync(join(historiesDir, `${name}.json`), `${historyToJSON(history)}\n`);
}
