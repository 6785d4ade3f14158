import { ApplicationFailure } from '@temporalio/common';

/**
 * The one vocabulary of failure types that activities and workflows throw and branch on. Retrying
 * cannot fix the non-retryable ones; Conflict, Transient and Unclassified are retried with backoff.
 */
export const failureTypes = [
  'NotFound',
  'Forbidden',
  'InvalidInput',
  'Refused',
  'Conflict',
  'Transient',
  'Unclassified',
  'RolloutIncomplete',
  'ProgressDeadlineExceeded',
  'AppNotReady',
  'CommandFailed',
  'PasswordVerificationFailed',
] as const;
export type FailureType = (typeof failureTypes)[number];

export const nonRetryableFailureTypes: FailureType[] = [
  'InvalidInput',
  'Forbidden',
  'NotFound',
  'Refused',
  'RolloutIncomplete',
  'ProgressDeadlineExceeded',
  'AppNotReady',
  'CommandFailed',
  'PasswordVerificationFailed',
];

/** A failure of one of the types above, non-retryable exactly when retrying cannot help. */
export function failure(type: FailureType, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: nonRetryableFailureTypes.includes(type) });
}
