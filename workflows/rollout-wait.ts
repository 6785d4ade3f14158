import { ActivityFailure, proxyActivities, TimeoutFailure } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RolloutStatus } from '../activities/kubernetes-rollouts';
import { longRunning } from './activity-options';
import { errorText, failure } from '../common/failures';

/**
 * Waits that heartbeat (longRunning) but are not retried by Temporal: a retry would restart the
 * whole timeout. A lost worker is retried by `waitWithinDeadline`, with what is left of the deadline.
 */
export const deadlineWait = proxyActivities<Activities>({ ...longRunning, retry: { ...longRunning.retry, maximumAttempts: 1 } });

export type CompletedRollout = RolloutStatus & { waitedMs: number };

/**
 * Runs `attempt` (a wait of `deadlineWait`) with what is left of `timeoutSeconds` (whole seconds, at
 * least 1): an attempt lost with its worker (heartbeat timeout) is tried again, at most 5 attempts
 * in all and while more than a second is left. Any other error, or the last one, is rethrown.
 */
export async function waitWithinDeadline<T>(timeoutSeconds: number, attempt: (remainingSeconds: number) => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (let n = 1; ; n++) {
    try {
      return await attempt(Math.max(1, Math.ceil((deadline - Date.now()) / 1000)));
    } catch (err) {
      if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && n < 5 && deadline - Date.now() > 1000) continue;
      throw err;
    }
  }
}

/**
 * Waits until every replica of the Deployment is updated and available, `timeoutSeconds` in all: an
 * attempt lost with its worker (heartbeat timeout) is tried again with what is left of the deadline.
 * Otherwise fails the step, non-retryable `RolloutIncomplete`: "<done>, but the rollout did not
 * complete within Ns: <why>".
 */
export async function waitForRollout(target: { namespace: string; deployment: string }, timeoutSeconds: number, done: string): Promise<CompletedRollout> {
  try {
    return await waitWithinDeadline(timeoutSeconds, (remainingSeconds) => deadlineWait.waitForRolloutComplete({ ...target, timeoutSeconds: remainingSeconds, pollIntervalMs: 1000 }));
  } catch (err) {
    throw failure('RolloutIncomplete', `${done}, but the rollout did not complete within ${timeoutSeconds}s: ${errorText(err)}`);
  }
}
