import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { WorkflowHandle } from '@temporalio/client';
import type { RunbookClient } from '../../client';
import type { RunbookStatus } from '../../common/runbook';
import type { RunbookConfig } from '../../config/schema';
import { waitUntil } from '../../scripts/testbed/processes';
import { connectClient } from '../../workers/temporal-client';
import { testbedEnv } from './testbed';

/** Waits until the run asks for approval of this step, and returns what it asks. */
export async function pendingOf(runbooks: RunbookClient, workflowId: string, stepId: string): Promise<NonNullable<RunbookStatus['pending']>> {
  let status: RunbookStatus | undefined;
  await waitUntil(`${stepId} waiting for approval`, async () => (status = await runbooks.getStatus(workflowId)).pending?.stepId === stepId);
  return status!.pending!;
}

/**
 * Runs share one workflow id per target (dedupe): a run (or target lock) left behind by a failed
 * test must not be joined by the next one.
 */
export async function terminateRuns(temporal: RunbookConfig['temporal'], workflowIds: string[]): Promise<void> {
  const { client, close } = await connectClient(temporal);
  try {
    for (const id of workflowIds) await client.workflow.getHandle(id).terminate('test cleanup').catch(() => undefined); // none running
  } finally {
    await close();
  }
}

/** An object of the test bed's bucket as text (reports, evidence). */
export async function readBucketText(key: string): Promise<string> {
  const env = testbedEnv();
  const s3 = new S3Client({ endpoint: env.S3_ENDPOINT, region: env.S3_REGION, forcePathStyle: true, credentials: { accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: env.S3_SECRET_ACCESS_KEY! } });
  try {
    return await (await s3.send(new GetObjectCommand({ Bucket: env.S3_BUCKET, Key: key }))).Body!.transformToString();
  } finally {
    s3.destroy();
  }
}

/** Activity types a run scheduled, in order (e.g. to show bad input stopped it before any work). */
export async function scheduledActivityTypes(handle: WorkflowHandle): Promise<string[]> {
  return (await handle.fetchHistory()).events?.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []) ?? [];
}
