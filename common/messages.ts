import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CancelRequest, Decision, DecisionReceipt, RunbookStatus } from './runbook';

/**
 * The messages every runbook run answers, shared by workflows, the client API and the CLI.
 * Updates are for programs and the CLI (refused synchronously by their validators); the signals
 * carry the same decisions for people using the Temporal UI (checked inside, refusals recorded).
 */
export const approveUpdate = defineUpdate<DecisionReceipt, [Decision]>('approve');
export const rejectUpdate = defineUpdate<DecisionReceipt, [Decision]>('reject');
export const approveSignal = defineSignal<[Decision]>('approveSignal');
export const rejectSignal = defineSignal<[Decision]>('rejectSignal');
export const cancelSignal = defineSignal<[CancelRequest]>('cancel');
/**
 * An alert that wants the run went away. With its fingerprint the run forgets that alert and stops
 * (before changing anything more) only when no other alert still wants it; without one (older
 * clients) it stops at once.
 */
export const alertResolvedSignal = defineSignal<[{ alert?: string; fingerprint?: string }]>('alertResolved');
/** An alert (by its Alertmanager fingerprint) wants the run: sent with each firing start or join. */
export const alertFiringSignal = defineSignal<[{ alert: string; fingerprint: string }]>('alertFiring');
export const statusQuery = defineQuery<RunbookStatus>('status');
