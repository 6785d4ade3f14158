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

const decisionInput = (verdict: string) =>
  `Input: the JSON printed by \`runbook sign <workflow id> --step <step>${verdict === 'reject' ? ' --reject' : ''} --reason "<why>" --plan <hash>\`, e.g. {"statement": "{\\"type\\":\\"runbook-decision/v1\\",...}", "signature": "-----BEGIN SSH SIGNATURE-----..."}. ` +
  'Only where no approver has a key (UNVERIFIED) a plain decision counts: {"stepId": "restart-database", "planHash": "<the 64 hex digits shown in Current Details>", "approver": "bob", "reason": "pool exhausted"}.';

/** What each message does and takes, shown by the Temporal UI beside the Signal, Update and Query pickers. */
export const messageDescriptions = {
  approve: `Approve the step waiting for approval (the plan in Current Details). From the UI: Send an Update > approve; refused at once, with the reason, when the decision does not hold. ${decisionInput('approve')}`,
  reject: `Reject the step waiting for approval: nothing of it is applied and the run ends rejected. From the UI: Send an Update > reject. ${decisionInput('reject')}`,
  approveSignal: `For older clients: approve as a Signal (no answer; a refusal is recorded in the timeline). Prefer the approve Update. ${decisionInput('approve')}`,
  rejectSignal: `For older clients: reject as a Signal (no answer; a refusal is recorded in the timeline). Prefer the reject Update. ${decisionInput('reject')}`,
  cancel:
    'Stop the run before its next destructive step; a change in progress finishes or is undone, never left half-done. Records who and why: send it, then Request Cancellation so the run ends Canceled (runbook cancel does both). Input: {"by": "carol", "reason": "false alarm"}.',
  alertFiring: 'Sent by the alert bridge: an alert (by its Alertmanager fingerprint) wants this run. Input: {"alert": "PostgresConnectionsHigh", "fingerprint": "3f2a9c0e1b7d4a65"}.',
  alertResolved:
    'Sent by the alert bridge: an alert went away; the run stops (before changing anything more) when no other alert wants it. Input: {"alert": "PostgresConnectionsHigh", "fingerprint": "3f2a9c0e1b7d4a65"}.',
  status: 'The run as JSON: state, plan with hashes, the step waiting for approval, outcome and timeline. No input.',
} as const;
