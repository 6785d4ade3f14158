import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CancelledFailure, WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { LockRequest } from '../../common/target-lock-messages';
import type { RunbookClient } from '../../client';
import type { RunbookStatus } from '../../common/runbook';
import type { RunbookConfig } from '../../config/schema';
import { waitUntil } from '../../scripts/testbed/processes';
import { connectClient } from '../../config/temporal-connection';
import { testbedEnv, testbedS3 } from './testbed';

/** Waits until the run asks for approval of this step (with that many approvals in, when given), and returns what it asks. */
export async function pendingOf(runbooks: RunbookClient, workflowId: string, stepId: string, approvals?: number): Promise<NonNullable<RunbookStatus['pending']>> {
  let status: RunbookStatus | undefined;
  await waitUntil(`${stepId} waiting for approval${approvals === undefined ? '' : ` with ${approvals} approvals`}`, async () => {
    const pending = (status = await runbooks.getStatus(workflowId)).pending;
    return pending?.stepId === stepId && (approvals === undefined || (pending.approvals?.length ?? 0) === approvals);
  });
  return status!.pending!;
}

/**
 * A run that ended by Temporal's cancellation: its result is a CancelledFailure, the server
 * says CANCELLED (searchable as ExecutionStatus = 'Canceled'), and its status (asked of the
 * worker) is returned to check its timeline.
 */
export async function canceledRun(runbooks: RunbookClient, client: Client, workflowId: string): Promise<RunbookStatus> {
  const ended = await runbooks.waitForResult(workflowId).then(
    () => new Error(`${workflowId} completed instead of ending Canceled`),
    (err: unknown) => err,
  );
  if (!(ended instanceof WorkflowFailedError && ended.cause instanceof CancelledFailure)) throw ended;
  const described = await client.workflow.getHandle(workflowId).describe();
  if (described.status.name !== 'CANCELLED') throw new Error(`${workflowId} is ${described.status.name}, not CANCELLED`);
  return runbooks.getStatus(workflowId);
}

/**
 * Runs share one workflow id per target (dedupe): a run (or target lock) left behind by a failed
 * test must not be joined by the next one.
 */
export async function terminateRuns(temporal: RunbookConfig['temporal'], workflowIds: string[]): Promise<void> {
  const { client, close } = await connectClient(temporal);
  try {
    for (const id of workflowIds)
      await client.workflow
        .getHandle(id)
        .terminate('test cleanup')
        .catch(() => undefined); // none running
  } finally {
    await close();
  }
}

/** readBucketText's client, made on first use and kept for the test file (its idle keep-alive sockets do not hold the process). */
let bucketReader: S3Client | undefined;

/** An object of the test bed's bucket as text (reports, evidence). */
export async function readBucketText(key: string): Promise<string> {
  bucketReader ??= testbedS3();
  return (await bucketReader.send(new GetObjectCommand({ Bucket: testbedEnv().S3_BUCKET, Key: key }))).Body!.transformToString();
}

/** Activity types a run scheduled, in order (e.g. to show bad input stopped it before any work). */
export async function scheduledActivityTypes(handle: WorkflowHandle): Promise<string[]> {
  return (await handle.fetchHistory()).events?.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []) ?? [];
}

/**
 * What a target lock saw, in its history's order: each request, grant and release with the
 * requesting workflow id. Ordering proof that does not depend on timing.
 */
export async function lockTimeline(lock: WorkflowHandle): Promise<Array<['request' | 'grant' | 'release', string]>> {
  const requester = (payload: unknown) => defaultPayloadConverter.fromPayload<LockRequest>(payload as Parameters<typeof defaultPayloadConverter.fromPayload>[0]).requester;
  return ((await lock.fetchHistory()).events ?? []).flatMap((e): Array<['request' | 'grant' | 'release', string]> => {
    const granted = e.signalExternalWorkflowExecutionInitiatedEventAttributes?.workflowExecution?.workflowId;
    if (granted) return [['grant', granted]];
    const signal = e.workflowExecutionSignaledEventAttributes;
    const payload = signal?.input?.payloads?.[0];
    if (!payload) return [];
    if (signal.signalName === 'acquireLock') return [['request', requester(payload)]];
    if (signal.signalName === 'releaseLock') return [['release', requester(payload)]];
    return [];
  });
}

/** Approves each step in turn as `approver` once it waits, on the plan it shows ("approve <step>"). */
export async function approveEach(runbooks: RunbookClient, workflowId: string, steps: readonly string[], approver = 'bob'): Promise<void> {
  for (const step of steps) {
    const pending = await pendingOf(runbooks, workflowId, step);
    await runbooks.approve(workflowId, { stepId: step, planHash: pending.planHash, approver, reason: `approve ${step}` });
  }
}

/** The manual's incident report (事后分析): the timeline and its four parts. */
export function expectIncidentReport(markdown: string, { timeline = true } = {}): void {
  for (const part of [...(timeline ? ['## Timeline'] : []), '## Impact', '## Root cause', '## Solution', '## Prevention']) expect(markdown).toContain(part);
}

/** Every string and byte payload of a history as text (payloads are JSON bytes: decoded, not base64). */
export function historyText(value: unknown, out: string[] = []): string[] {
  if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) historyText(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) historyText(v, out);
  return out;
}
