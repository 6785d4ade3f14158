import { defineQuery, defineSignal } from '@temporalio/workflow';

/** The per-target lock's messages (workflows/target-lock.ts), shared by runbook runs and the lock activity. */
export interface LockRequest {
  requester: string;
  requestId: string;
}
export const acquireLockSignal = defineSignal<[LockRequest]>('acquireLock');
export const releaseLockSignal = defineSignal<[LockRequest]>('releaseLock');
export const lockGrantedSignal = defineSignal<[{ requestId: string }]>('lockGranted');
export const lockStateQuery = defineQuery<{ holder?: LockRequest; waiting: LockRequest[] }>('lockState');

export const lockWorkflowId = (target: string) => `lock/${target}`;
