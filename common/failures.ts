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
  'Cancelled',
] as const;
export type FailureType = (typeof failureTypes)[number];

/** Retrying may mend these (a conflict re-read, an outage over, an unknown error once more). */
const retryableFailureTypes: readonly FailureType[] = ['Conflict', 'Transient', 'Unclassified'];
export const nonRetryableFailureTypes: FailureType[] = failureTypes.filter((t) => !retryableFailureTypes.includes(t));

/** A failure of one of the types above, non-retryable exactly when retrying cannot help. */
export function failure(type: FailureType, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: nonRetryableFailureTypes.includes(type) });
}

/** Temporal's wrapping layers: their messages ("Activity task failed") say nothing that their cause does not. */
const wrapperNames = ['ActivityFailure', 'ChildWorkflowFailure', 'WorkflowFailedError', 'WorkflowUpdateFailedError'];

/**
 * Any error as one line for timelines, reports, logs and check rows: the message with up to two
 * causes (Temporal's wrapping layers left out), a system error's code when the message lacks it,
 * credentials in URLs masked, at most 500 characters.
 */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; parts.length < 3; e = e.cause) {
    const wrapper = isErrorLike(e) && wrapperNames.includes(String(e.name)) && isErrorLike(e.cause);
    const text = isErrorLike(e) ? `${e.message || e.name || 'Error'}${codeOf(e)}` : String(e);
    if (!wrapper && !parts.some((p) => p.includes(text))) parts.push(text);
    if (!isErrorLike(e) || e.cause === undefined || e.cause === null) break;
  }
  const oneLine = parts
    .join(': ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .join('; ');
  return redactUrlCredentials(oneLine).slice(0, 500);
}

interface ErrorLike {
  message: string;
  name?: unknown;
  code?: unknown;
  cause?: unknown;
}

/** By shape, not `instanceof Error`: errors from another realm (Node's fetch under jest's VM, the workflow sandbox) are errors too. */
function isErrorLike(e: unknown): e is ErrorLike {
  return typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string';
}

function codeOf(err: ErrorLike): string {
  return typeof err.code === 'string' && !err.message.includes(err.code) ? ` (${err.code})` : '';
}

/** "postgres://user:secret@host" as "postgres://***@host". */
export function redactUrlCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}
