import { condition, continueAsNew, getExternalWorkflowHandle, log, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { quickRead } from './activity-options';
import { acquireLockSignal, lockGrantedSignal, lockStateQuery, releaseLockSignal, type LockRequest } from '../common/target-lock-messages';

/** Longest one holder may keep the lock: a step's re-plan and apply, never an approval wait. */
const leaseMs = 30 * 60 * 1000;
/** How often a held lock checks that its holder still runs (a terminated run never releases). */
const holderCheckMs = 15 * 1000;
const { isRunOpen } = proxyActivities<Activities>(quickRead);
const idleMs = 10 * 60 * 1000;
const grantsPerRun = 200;

/**
 * A durable mutex for one target: runs queue here and get the lock one at a time, in order, so two
 * runbooks never change the same target at once. Runbooks hold it only around re-plan and apply.
 */
export async function targetLock({ target }: { target: string }, carried: LockRequest[] = []): Promise<void> {
  const waiting: LockRequest[] = [...carried];
  let holder: LockRequest | undefined;
  setHandler(acquireLockSignal, (request) => {
    if (holder?.requestId === request.requestId || waiting.some((w) => w.requestId === request.requestId)) return; // a retried request
    waiting.push(request);
  });
  setHandler(releaseLockSignal, (request) => {
    if (holder?.requestId === request.requestId) holder = undefined;
    else waiting.splice(0, waiting.length, ...waiting.filter((w) => w.requestId !== request.requestId));
  });
  setHandler(lockStateQuery, () => ({ holder, waiting: [...waiting] }));

  for (let grants = 0; grants < grantsPerRun;) {
    if (!(await condition(() => waiting.length > 0, idleMs))) return; // idle: end; the next request starts a new run
    holder = waiting.shift()!;
    grants++;
    try {
      await getExternalWorkflowHandle(holder.requester).signal(lockGrantedSignal, { requestId: holder.requestId });
    } catch (err) {
      log.warn('lock requester is gone; passing the lock on', { target, requester: holder.requester, error: String(err) });
      holder = undefined;
      continue;
    }
    const held = holder;
    for (let waited = 0; holder === held; waited += holderCheckMs) {
      if (await condition(() => holder !== held, holderCheckMs)) break;
      if (waited + holderCheckMs >= leaseMs) {
        log.warn('lock lease expired; passing the lock on', { target, requester: held.requester });
        holder = undefined;
      } else if (!(await isRunOpen({ workflowId: held.requester }))) {
        log.warn('lock holder ended without releasing; passing the lock on', { target, requester: held.requester });
        holder = undefined;
      }
    }
  }
  await continueAsNew<typeof targetLock>({ target }, waiting);
}
