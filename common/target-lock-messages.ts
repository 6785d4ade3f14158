import { defineQuery, defineSignal } from '@temporalio/workflow';
import { z } from 'zod';

/** The per-target lock's messages (workflows/target-lock.ts), shared by runbook runs and the lock activity. */
export interface LockRequest {
  /** The requesting run's workflow id. */
  requester: string;
  /**
   * The requesting run: the grant goes to it alone and the lock holds only while it is open, so a
   * later run on the same workflow id is another requester. Absent in requests of older runs.
   */
  runId?: string;
  requestId: string;
}

/** What the lock shows: its holder, the queue, and the holder's lease (renewed while the holder's run is open). */
export interface LockState {
  holder?: LockRequest;
  waiting: LockRequest[];
  lease?: { grantedAt: string; renewedAt: string; until: string };
}

export const acquireLockSignal = defineSignal<[LockRequest]>('acquireLock');
export const releaseLockSignal = defineSignal<[LockRequest]>('releaseLock');
export const lockGrantedSignal = defineSignal<[{ requestId: string }]>('lockGranted');
export const lockStateQuery = defineQuery<LockState>('lockState');

/** Internal: runbook runs and their lock talk with these; people never send them. */
export const lockMessageDescriptions = {
  acquireLock: 'Internal (runbook runs send it): queue for this target; the lock grants runs one at a time. Do not send it by hand.',
  releaseLock: 'Internal (runbook runs send it): leave the queue or give the lock back. Do not send it by hand.',
  lockGranted: 'Internal (the target lock sends it): this run now holds the lock on its target. Do not send it by hand.',
  lockState: "The lock's holder, its lease and the runs queued behind it. No input.",
} as const;

export const lockWorkflowId = (target: string) => `lock/${target}`;

const minute = 60_000;

/**
 * The lock workflow's input: its target and, for tests, shorter timings. Bounded so a lock cannot
 * be started to pass on at once (a lease shorter than its check) or to poll its holder in a loop.
 */
export const targetLockInput = z
  .object({
    target: z.string().min(1),
    leaseMs: z
      .number()
      .int()
      .min(1000, { message: 'at least 1000 ms' })
      .max(24 * 60 * minute, { message: 'at most 24 hours' })
      .optional(),
    holderCheckMs: z
      .number()
      .int()
      .min(100, { message: 'at least 100 ms' })
      .max(10 * minute, { message: 'at most 10 minutes' })
      .optional(),
    endedHolderGraceMs: z
      .number()
      .int()
      .min(0, { message: 'at least 0 ms' })
      .max(60 * minute, { message: 'at most 60 minutes' })
      .optional(),
  })
  .strict()
  .refine((i) => i.holderCheckMs === undefined || i.leaseMs === undefined || i.holderCheckMs < i.leaseMs, { message: 'holderCheckMs must be shorter than leaseMs', path: ['holderCheckMs'] });

/** Requests a lock run carries into the next (continue-as-new). */
export const carriedLockRequests = z.array(z.object({ requester: z.string().min(1), runId: z.string().min(1).optional(), requestId: z.string().min(1) }).strict());
