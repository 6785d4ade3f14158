import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { acquireLockSignal, lockStateQuery, lockWorkflowId, releaseLockSignal, type LockRequest } from '../common/target-lock-messages';
import { waitUntil } from '../scripts/testbed/processes';
import { testbedConfig } from './helpers/testbed';
import { withWorker } from './helpers/worker';

/**
 * Found by the crash matrix: when the worker serving a target lock died right after granting it,
 * the holder's release reached the lock before the grant's delivery did (signals are handled
 * first). The lock then "held" for nobody and its next holder check threw, failing every workflow
 * task after: the target stayed locked for good.
 */
describe('target lock: a release that arrives before the grant is seen delivered', () => {
  const config = testbedConfig();

  /** A running workflow no worker serves: it can receive the lock's grant and shows it in its history. */
  async function requester(client: Client): Promise<LockRequest> {
    const handle = await client.workflow.start('lockRequesterStandIn', { taskQueue: `unserved-${randomUUID()}`, workflowId: `lock-requester/${randomUUID()}` });
    return { requester: handle.workflowId, runId: handle.firstExecutionRunId, requestId: randomUUID() };
  }

  const granted = async (client: Client, request: LockRequest) =>
    ((await client.workflow.getHandle(request.requester).fetchHistory()).events ?? []).some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'lockGranted');

  test('the lock passes on to the next requester', async () => {
    const target = `race-${randomUUID()}`;
    await withWorker(
      config,
      async ({ client, taskQueue }) => {
        const [first, next] = [await requester(client), await requester(client)];
        const lock = await client.workflow.signalWithStart('targetLock', {
          taskQueue,
          workflowId: lockWorkflowId(target),
          args: [{ target, holderCheckMs: 500 }],
          signal: acquireLockSignal,
          signalArgs: [first],
        });
        try {
          await waitUntil('the grant delivered to the first requester', () => granted(client, first), 20_000);
          // Within the delay before the lock sees its grant delivered (test/workflows/delayed-signal-interceptors.ts).
          await lock.signal(releaseLockSignal, first);
          await lock.signal(acquireLockSignal, next);
          await waitUntil('the lock granted to the next requester', () => granted(client, next), 20_000);
          expect((await lock.query(lockStateQuery)).holder?.requestId).toBe(next.requestId);
        } finally {
          for (const id of [lock.workflowId, first.requester, next.requester])
            await client.workflow
              .getHandle(id)
              .terminate('test over')
              .catch(() => undefined);
        }
      },
      { workflowInterceptorModules: [require.resolve('./workflows/delayed-signal-interceptors')] },
    );
  });
});
