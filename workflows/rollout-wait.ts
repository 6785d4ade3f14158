import { ActivityFailure, ApplicationFailure, proxyActivities, TimeoutFailure } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RolloutStatus } from '../activities/kubernetes-rollouts';
import { longRunning } from './activity-options';
import { errorMessage } from './kernel/runbook-run';

/** The wait heartbeats; Temporal does not retry it (a retry would restart its whole timeout): lost workers are retried below. */
const wait = proxyActivities<Activities>({ ...longRunning, retry: { ...longRunning.retry, maximumAttempts: 1 } });

export type CompletedRollout = RolloutStatus & { waitedMs: number };

/**
 * Waits until every replica of the Deployment is updated and available, `timeoutSeconds` in all: an
 * attempt lost with its worker (heartbeat timeout) is tried again with what is left of the deadline.
 * Otherwise fails the step, non-retryable `RolloutIncomplete`: "<done>, but the rollout did not
 * complete within Ns: <why>".
 */
export async function waitForRollout(target: { namespace: string; deployment: string }, timeoutSeconds: number, done: string): Promise<CompletedRollout> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await wait.waitForRolloutComplete({ ...target, timeoutSeconds: Math.max(1, Math.ceil((deadline - Date.now()) / 1000)), pollIntervalMs: 1000 });
    } catch (err) {
      if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && attempt < 5 && deadline - Date.now() > 1000) continue;
      throw ApplicationFailure.create({ type: 'RolloutIncomplete', nonRetryable: true, message: `${done}, but the rollout did not complete within ${timeoutSeconds}s: ${errorMessage(err)}` });
    }
  }
}
