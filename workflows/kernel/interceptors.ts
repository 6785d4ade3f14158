import {
  CancellationScope,
  CancelledFailure,
  ContinueAsNew,
  isCancellation,
  patched,
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
 * The workflow's body runs in a scope of its own that Temporal's cancellation does not reach by
 * itself: the cancellation decides first whether it interrupts the body. Cancelling the scope
 * with the root's error propagates the cancel exactly as the root would have (runs recorded
 * before 'temporal-cancel-finishes', lock workflows).
 */
class BodyScope extends CancellationScope {
  constructor() {
    super({ cancellable: true, parent: new CancellationScope({ cancellable: false }) });
  }

  cancelWith(err: unknown): void {
    this.reject(err);
  }
}

/**
 * Temporal's cancel is the run's cancel: a runbook run stops before its next destructive step,
 * finishes its cleanup (compensation, lock release, report, `finished` entry) undisturbed, then
 * ends Canceled. A run that ends by an error (a refused target, a failed activity) still gets its
 * `finished` timeline entry, so its status says how it ended (memory only: no command).
 */
class RunEnding implements WorkflowInboundCallsInterceptor {
  async execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const body = new BodyScope();
    CancellationScope.current().cancelRequested.catch((err: unknown) => {
      const run = RunbookRun.current;
      if (run && patched('temporal-cancel-finishes')) run.cancelFromTemporal();
      else body.cancelWith(err);
    });
    let result: unknown;
    try {
      result = await body.run(() => next(input));
    } catch (err) {
      if (err instanceof ContinueAsNew) throw err;
      const run = RunbookRun.current;
      await run?.releasesDelivered();
      run?.endedByError(err, isCancellation(err) || run.endsCanceled);
      if (run?.endsCanceled && !isCancellation(err)) throw new CancelledFailure(run.cancelledSentence());
      throw err;
    }
    await RunbookRun.current?.releasesDelivered();
    if (RunbookRun.current?.endsCanceled) throw new CancelledFailure(RunbookRun.current.cancelledSentence());
    return result;
  }
}

/** Every activity says in the UI what it acts on (a call that gives its own summary keeps it). No command changes: user metadata is not replayed. */
class ActivitySummaries implements WorkflowOutboundCallsInterceptor {
  scheduleActivity(input: ActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>): Promise<unknown> {
    if (input.options.summary) return next(input);
    return next({ ...input, options: { ...input.options, summary: activitySummary(input.activityType, input.args) } });
  }
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new RunEnding()], outbound: [new ActivitySummaries()] });
