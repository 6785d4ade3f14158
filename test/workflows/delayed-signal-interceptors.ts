import { sleep, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

/** How long a signal to another workflow takes to resolve after it is delivered (a slow worker, a dead sticky queue). */
export const signalResolutionDelayMs = 3_000;

/**
 * Test-only: a workflow's signal to another workflow resolves only a while after it was delivered,
 * so what the other side does meanwhile (e.g. release a lock it was just granted) is handled first,
 * deterministically, as happens when the worker that sent it dies.
 */
export const interceptors: WorkflowInterceptorsFactory = () => ({
  outbound: [
    {
      async signalWorkflow(input, next) {
        await next(input);
        await sleep(signalResolutionDelayMs);
      },
    },
  ],
});
