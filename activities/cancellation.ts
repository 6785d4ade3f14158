import type { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';

/** Throws the SDK's CancelledFailure once the activity was cancelled (delivered with a heartbeat). */
export function throwIfCancelled(ctx: Context): void {
  const signal = ctx.cancellationSignal;
  if (!signal.aborted) return;
  throw signal.reason instanceof CancelledFailure ? signal.reason : new CancelledFailure(`activity cancelled: ${String(signal.reason)}`);
}
