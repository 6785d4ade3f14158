import {
  ContinueAsNew,
  isCancellation,
  type ActivityInput,
  type Next,
  type WorkflowExecuteInput,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptorsFactory,
  type WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { activitySummary } from './activity-summary';
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

/** Every activity says in the UI what it acts on (a call that gives its own summary keeps it). No command changes: user metadata is not replayed. */
class ActivitySummaries implements WorkflowOutboundCallsInterceptor {
  scheduleActivity(input: ActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>): Promise<unknown> {
    if (input.options.summary) return next(input);
    return next({ ...input, options: { ...input.options, summary: activitySummary(input.activityType, input.args) } });
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new FinishedOnError()], outbound: [new ActivitySummaries()] });
