import { defineQuery, defineSignal } from '@temporalio/workflow';

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

export const lockWorkflowId = (target: string) => `lock/${target}`;
