import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { errorText, failure, type FailureType } from '../common/failures';

export { failure, type FailureType } from '../common/failures';

/** A guard said no: the action is outside what configuration allows. Never retried. */
export function refused(message: string): ApplicationFailure {
  return failure('Refused', message);
}

export function invalidInput(message: string): ApplicationFailure {
  return failure('InvalidInput', message);
}

/**
 * Socket-level failures, by text where a client wraps them in a message of its own (the AWS SDK's
 * "AWS SDK error wrapper for Error: connect ECONNREFUSED ...", ioredis' "Connection is closed.").
 */
const networkFailureText = /Connection is closed|max retries per request|Stream isn't writeable|\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)\b/i;

const transientCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** PostgreSQL SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
function postgresType(code: string): FailureType | undefined {
  if (code === '42501') return 'Forbidden';
  if (code === '3D000' || code === '42P01' || code === '42704' || code === '42883') return 'NotFound';
  if (code === '40001' || code === '40P01' || code === '55P03') return 'Conflict';
  if (code.startsWith('08') || code === '53300' || code === '57P01' || code === '57P02' || code === '57P03') return 'Transient';
  if (code.startsWith('22') || code === '42601' || code === '42602' || code === '42622' || code === '23505' || code === '23503') return 'InvalidInput';
  return undefined;
}

function httpType(status: number): FailureType | undefined {
  if (status === 404) return 'NotFound';
  if (status === 401 || status === 403) return 'Forbidden';
  if (status === 409) return 'Conflict';
  if (status === 400 || status === 422) return 'InvalidInput';
  if (status === 429 || status >= 500) return 'Transient';
  return undefined;
}

/** Reads the HTTP status of a Kubernetes client error (statusCode) or an AWS SDK error ($metadata). */
function httpStatusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown }; response?: { statusCode?: unknown } };
  for (const candidate of [e.statusCode, e.response?.statusCode, e.$metadata?.httpStatusCode, typeof e.code === 'number' ? e.code : undefined]) {
    if (typeof candidate === 'number' && candidate >= 100) return candidate;
  }
  return undefined;
}

/** The systems activities call, as a sentence names them ("PostgreSQL is unreachable"). */
export type SystemName = 'the Kubernetes API' | 'PostgreSQL' | 'Redis' | 'S3' | 'Prometheus' | 'Temporal' | 'Slack' | 'the notification webhook';

/** What the failure is about, e.g. "patch deployments short-drama-app in short-drama-prod", and the system called. */
export interface FailureContext {
  action: string;
  system?: SystemName;
}

/**
 * Maps a client error (pg, ioredis, AWS SDK, Kubernetes client, fetch) to an ApplicationFailure
 * of a type the workflows can branch on. The message names the action; credentials are removed.
 */
export function classifyError(err: unknown, context: FailureContext): ApplicationFailure | CancelledFailure {
  // A cancelled activity must surface as a cancellation, not as a failure to retry.
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  const e = err as { code?: unknown; name?: unknown; body?: { message?: unknown }; cause?: { code?: unknown } };
  // fetch() reports network errors as TypeError('fetch failed') with the errno code on its cause.
  const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : undefined;
  const detail = typeof e.body?.message === 'string' ? e.body.message : errorText(err);
  let type: FailureType | undefined;
  if (code && /^[0-9A-Z]{5}$/.test(code)) type = postgresType(code);
  const network = (code !== undefined && transientCodes.has(code)) || networkFailureText.test(detail);
  if (!type && network) type = 'Transient';
  if (!type) {
    const status = httpStatusOf(err);
    if (status !== undefined) type = httpType(status);
  }
  if (!type && typeof e.name === 'string') {
    if (e.name === 'NoSuchKey' || e.name === 'NoSuchBucket' || e.name === 'NotFound') type = 'NotFound';
    else if (e.name === 'AccessDenied') type = 'Forbidden';
    else if (e.name === 'TimeoutError' || e.name === 'AbortError') type = 'Transient';
  }
  if (!type && /NOPERM|NOAUTH|WRONGPASS/.test(detail)) type = 'Forbidden';
  // Whoever reads the step's failure first wants to know which system was not there.
  const message = network && context.system ? `${context.action}: ${context.system} is unreachable (${detail})` : `${context.action}: ${detail}${hintFor(detail)}`;
  return failure(type ?? 'Unclassified', message);
}

/** What to do about an error whose own text does not say it. */
function hintFor(detail: string): string {
  if (detail.includes('attempting to grant RBAC permissions not currently held')) {
    return ". Kubernetes lets an account grant only what it holds itself: grant those rights to the worker's account too (deploy/kubernetes, activities/kubernetes-permissions.ts) or leave them out";
  }
  return '';
}

/** Runs a client call and rethrows any error classified; `system` is named when it cannot be reached. */
export async function classified<T>(action: string, call: () => Promise<T>, system?: SystemName): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw classifyError(err, { action, system });
  }
}

/** `classified` for the calls of one system: `const inRedis = callsTo('Redis')`. */
export function callsTo(system: SystemName): <T>(action: string, call: () => Promise<T>) => Promise<T> {
  return (action, call) => classified(action, call, system);
}
