import { ContinueAsNew, isCancellation, type Next, type WorkflowExecuteInput, type WorkflowInboundCallsInterceptor, type WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { RunbookRun } from './runbook-run';

/**
 * A run that ends by an error (a refused target, a failed activity, Temporal's cancel) still
 * gets its `finished` timeline entry, so its status says how it ended. Records only in memory:
 * no command, so histories replay the same with or without it.
 */
class FinishedOnError implements WorkflowInboundCallsInterceptor {
  async execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      if (!(err instanceof ContinueAsNew)) RunbookRun.current?.endedByError(err, isCancellation(err));
      throw err;
    }
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new FinishedOnError()] });
