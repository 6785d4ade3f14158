import type { z } from 'zod';
import { condition, continueAsNew, getExternalWorkflowHandle, log, patched, proxyActivities, setHandler, setWorkflowOptions, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { quickRead } from './activity-options';
import { errorText } from '../common/failures';
import {
  acquireLockSignal,
  carriedLockRequests,
  lockGrantedSignal,
  lockMessageDescriptions,
  lockStateQuery,
  releaseLockSignal,
  targetLockInput,
  type LockRequest,
  type LockState,
} from '../common/target-lock-messages';
import { validateInput } from './validate-input';

/**
 * How long the lock trusts a holder it has not seen alive. Every holder check that finds the
 * holder's run open renews it, so an apply of any length keeps the lock while its run is open;
 * only a holder the lock cannot check (Temporal unreachable) for this long loses it.
 */
const defaultLeaseMs = 30 * 60 * 1000;
/** How often a held lock checks that its holder's run is still open (a terminated run never releases). */
const defaultHolderCheckMs = 15 * 1000;
/**
 * How long the lock stays with a holder found ended without releasing: an activity attempt the run
 * started may still be changing the target (a destructive one for up to its 2-minute
 * startToCloseTimeout, workflows/activity-options.ts; heartbeating waits learn of the end at their
 * next heartbeat, within 30 s).
 */
const defaultEndedHolderGraceMs = 2 * 60 * 1000;
const { isRunOpen } = proxyActivities<Activities>(quickRead);
const idleMs = 10 * 60 * 1000;
const grantsPerRun = 200;

/** The lease, the holder check interval and the grace after a holder's end are in ms (tests shorten them); the defaults above otherwise. */
export type TargetLockInput = z.input<typeof targetLockInput>;

interface Holding {
  held: LockRequest;
  released: () => boolean;
  leaseMs: number;
  holderCheckMs: number;
  endedHolderGraceMs: number;
}

/**
 * A durable mutex for one target: runs queue here and get the lock one at a time, in order, so two
 * runbooks never change the same target at once. Runbooks hold it only around re-plan and apply.
 * A holder is one run (workflow id and run id): the lock is held while that run is open, and
 * passes on when it releases or ends.
 */
export async function targetLock(raw: TargetLockInput, carriedRaw: LockRequest[] = []): Promise<void> {
  const input = validateInput({ name: 'targetLock', inputSchema: targetLockInput }, raw);
  const carried = validateInput({ name: 'targetLock (carried requests)', inputSchema: carriedLockRequests }, carriedRaw);
  const { target } = input;
  const timing = {
    leaseMs: input.leaseMs ?? defaultLeaseMs,
    holderCheckMs: input.holderCheckMs ?? defaultHolderCheckMs,
    endedHolderGraceMs: input.endedHolderGraceMs ?? defaultEndedHolderGraceMs,
  };
  const waiting: LockRequest[] = [...carried];
  let holder: LockRequest | undefined;
  let lease: LockState['lease'];
  setHandler(
    acquireLockSignal,
    (request) => {
      if (holder?.requestId === request.requestId || waiting.some((w) => w.requestId === request.requestId)) return; // a retried request
      waiting.push(request);
    },
    { description: lockMessageDescriptions.acquireLock },
  );
  setHandler(
    releaseLockSignal,
    (request) => {
      if (holder?.requestId === request.requestId) holder = undefined;
      else waiting.splice(0, waiting.length, ...waiting.filter((w) => w.requestId !== request.requestId));
    },
    { description: lockMessageDescriptions.releaseLock },
  );
  setHandler(lockStateQuery, () => ({ holder, waiting: [...waiting], lease }), { description: lockMessageDescriptions.lockState });

  for (let grants = 0; grants < grantsPerRun;) {
    if (!(await condition(() => waiting.length > 0, idleMs))) return; // idle: end; the next request starts a new run
    const held = waiting.shift()!;
    holder = held;
    grants++;
    try {
      // To the requesting run only: a request of a run that has ended is not granted to its successor.
      await getExternalWorkflowHandle(held.requester, held.runId).signal(lockGrantedSignal, { requestId: held.requestId });
    } catch (err) {
      log.warn('lock requester is gone; passing the lock on', { target, requester: held.requester, runId: held.runId, error: String(err) });
      if (holder === held) holder = undefined;
      continue;
    }
    // A quick holder's release can come in the same activation as the grant's delivery (signals
    // are handled first): then it is released already, and there is nothing to hold.
    if (holder !== held) continue;
    const holding = { held, released: () => holder !== held, ...timing };
    const grantedAt = new Date().toISOString();
    lease = { grantedAt, renewedAt: grantedAt, until: new Date(Date.now() + timing.leaseMs).toISOString() };
    const renew = (until: number) => (lease = { grantedAt, renewedAt: new Date().toISOString(), until: new Date(until).toISOString() });
    const lost = patched('target-lock-lease-renewed-while-holder-run-open') ? await holdWhileRunOpen(holding, renew) : await holdForFixedLease(holding);
    if (lost && holder === held) {
      log.warn(`${lost}; passing the lock on`, { target, requester: held.requester, runId: held.runId });
      holder = undefined;
    }
    lease = undefined;
  }
  await continueAsNew<typeof targetLock>(input, waiting);
}

/**
 * With Worker Versioning, the lock moves to the current version at its next task instead of being
 * pinned like the runbooks: runs of the old and the new version share it, and a lock pinned to the
 * old version would stop every new run once the old workers are gone. Its changes go behind patched().
 * Only on a versioned worker (an unversioned one has a build id but no deployment name): the
 * server refuses a behaviour from an unversioned worker.
 */
setWorkflowOptions(() => (workflowInfo().currentDeploymentVersion?.deploymentName ? { versioningBehavior: 'AUTO_UPGRADE' } : {}), targetLock);

/**
 * Waits until the holder releases (undefined) or must lose the lock (why). Each check that finds
 * the holder's run open renews the lease; a run found closed loses the lock after the grace for
 * what it may still have running.
 */
async function holdWhileRunOpen({ held, released, leaseMs, holderCheckMs, endedHolderGraceMs }: Holding, renew: (until: number) => void): Promise<string | undefined> {
  let until = Date.now() + leaseMs;
  while (!released()) {
    if (await condition(released, holderCheckMs)) return undefined;
    const open = await isRunOpen({ workflowId: held.requester, runId: held.runId }).catch((err: unknown) => {
      log.warn('cannot check the lock holder; its lease is not renewed', { requester: held.requester, error: errorText(err) });
      return undefined;
    });
    if (open === false) {
      if (endedHolderGraceMs > 0 && (await condition(released, endedHolderGraceMs))) return undefined;
      return 'lock holder ended without releasing';
    }
    if (open) renew((until = Date.now() + leaseMs));
    else if (Date.now() >= until) return 'lock lease expired: its holder could not be checked';
  }
  return undefined;
}

/** Before lease renewal (runs recorded earlier replay this): a fixed lease from the grant. */
async function holdForFixedLease({ held, released, leaseMs, holderCheckMs }: Holding): Promise<string | undefined> {
  for (let waited = 0; !released(); waited += holderCheckMs) {
    if (await condition(released, holderCheckMs)) return undefined;
    if (waited + holderCheckMs >= leaseMs) return 'lock lease expired';
    if (!(await isRunOpen({ workflowId: held.requester, runId: held.runId }))) return 'lock holder ended without releasing';
  }
  return undefined;
}
