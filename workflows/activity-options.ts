import type { ActivityOptions } from '@temporalio/workflow';

import { nonRetryableFailureTypes as nonRetryableErrorTypes } from '../common/failures';

/** Read-only calls that answer in seconds: retried quickly on transient errors. */
export const quickRead: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '20 seconds', maximumAttempts: 5, nonRetryableErrorTypes },
};

/** Changes to a system: few attempts, since each must be idempotent and a human approved exactly one change. */
export const destructive: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3, nonRetryableErrorTypes },
};

/** Waits and bulk work that heartbeat their progress, so a lost worker is noticed within the heartbeat timeout. */
export const longRunning: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5, nonRetryableErrorTypes },
};

/**
 * Index builds (CREATE INDEX / REINDEX CONCURRENTLY, ANALYZE): long, heartbeating every 2 s, so a
 * lost worker is noticed within 10 s. Its build goes on in its server session; the retry waits for
 * that build instead of starting a second one (activities/postgres-maintenance.ts awaitOtherBuild).
 */
export const concurrentBuild: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes },
};

/**
 * Undoing a change that must not stay half done (the old password back): each attempt is quick, and
 * the server retries it through an outage of minutes, for up to 10 minutes.
 */
export const compensating: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: '10 minutes',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes },
};
