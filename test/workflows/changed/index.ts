import { sleep } from '@temporalio/workflow';
import { dbConnectionExhaustion as released } from '../../../workflows/db-connection-exhaustion';

/**
 * dbConnectionExhaustion as a careless change would leave it: a timer before everything else,
 * without patched(). Replaying a recorded history through it must fail (test/unit/replay.test.ts).
 */
export async function dbConnectionExhaustion(input: Parameters<typeof released>[0]): ReturnType<typeof released> {
  await sleep('1 second');
  return released(input);
}
