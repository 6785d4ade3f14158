import type { PolicyIdentity } from '../../activities/runbook-support';
import { decisionStatementSchema, parseStatement, signatureNamespace, timeProblem } from '../../common/approval-statements';
import type { ApproverRole, Decision, DecisionVerdict, PendingApproval } from '../../common/runbook';
import { verifySshSignature } from '../../common/ssh-signature';

export interface DecisionContext {
  pending: PendingApproval | undefined;
  /** Who the input says started the run (a claim unless proven). */
  startedBy: string;
  /** Who the run's start proves started it (signed start, schedule); never their approver. */
  provenInitiator: string | undefined;
  approvers: PolicyIdentity[];
  /** Unsigned decisions are refused. */
  requireSignatures: boolean;
  run: { namespace: string; workflowId: string; runId: string };
  /** Workflow time (ms) the decision is judged at. */
  now: number;
  maxLifetimeMs: number;
  /** Statements already counted in this run: each works once. */
  usedStatements: ReadonlySet<string>;
  /** Who already approved the pending step. */
  approvedBy: readonly string[];
  /** The step already has its quorum, or a veto. */
  decided: boolean;
}

export interface AcceptedDecision {
  stepId: string;
  planHash: string;
  approver: string;
  reason: string;
  role: ApproverRole;
  verified: boolean;
  keyFingerprint?: string;
  /** The channel (e.g. Slack) whose key signed for the approver. */
  vouchedBy?: string;
  statement?: string;
}

/** Why a decision was refused, in a word: a bounded set, counted by the worker's metrics (the sentence says the rest). */
export const refusalReasons = [
  'malformed',
  'unsigned',
  'statement-mismatch',
  'wrong-run',
  'statement-time',
  'statement-reused',
  'unknown-approver',
  'no-key',
  'bad-signature',
  'signed-for-another',
  'not-pending',
  'wrong-plan',
  'already-decided',
  'four-eyes',
  'role-not-allowed',
  'duplicate-approver',
] as const;
export type RefusalReason = (typeof refusalReasons)[number];

type Refused = { ok: false; reason: RefusalReason; refusal: string };
export type DecisionCheck = { ok: true; decision: AcceptedDecision } | Refused;

const refuse = (reason: RefusalReason, refusal: string): Refused => ({ ok: false, reason, refusal });
const isPerson = (identity: PolicyIdentity) => (identity.kind ?? 'person') === 'person';

type Fields = Pick<AcceptedDecision, 'stepId' | 'planHash' | 'approver' | 'reason' | 'verified' | 'keyFingerprint' | 'vouchedBy' | 'statement'>;

/** The decision's fields from its signed statement, or why the statement does not count. */
function signedFields(decision: Decision, verdict: DecisionVerdict, context: DecisionContext): Fields | Refused {
  if (!decision.statement || !decision.signature) return refuse('malformed', 'a signed decision needs both statement and signature');
  const parsed = parseStatement(decisionStatementSchema, decision.statement);
  if (!parsed.ok) return refuse('malformed', parsed.reason);
  const s = parsed.statement;
  const { run } = context;
  if (s.temporalNamespace !== run.namespace || s.workflowId !== run.workflowId || s.runId !== run.runId) {
    return refuse('wrong-run', `the statement is for run ${s.workflowId} (${s.runId}) in namespace ${s.temporalNamespace}, not for this run ${run.workflowId} (${run.runId}) in ${run.namespace}`);
  }
  for (const field of ['stepId', 'planHash', 'approver', 'reason'] as const) {
    if (decision[field] !== undefined && decision[field] !== s[field]) return refuse('statement-mismatch', `the decision's ${field} differs from its signed statement`);
  }
  if (s.verdict !== verdict) return refuse('statement-mismatch', `the statement says ${s.verdict}; it cannot ${verdict}`);
  const late = timeProblem(s, context.now, context.maxLifetimeMs);
  if (late) return refuse('statement-time', late);
  if (context.usedStatements.has(decision.statement)) return refuse('statement-reused', 'this statement was already used; sign a new one for each decision');
  const signerId = s.signer ?? s.approver;
  const signer = context.approvers.find((a) => a.id === signerId);
  if (!signer) return refuse('unknown-approver', `${signerId} is not a configured approver`);
  if (!signer.publicKey) return refuse('no-key', `${signerId} has no public key configured, so a signature by them cannot be checked`);
  const verdictOfKey = verifySshSignature(signer.publicKey, signatureNamespace, decision.statement, decision.signature);
  if (!verdictOfKey.ok) return refuse('bad-signature', `not signed by ${signerId}: ${verdictOfKey.reason}`);
  if (signerId !== s.approver && signer.kind !== 'channel') return refuse('signed-for-another', `${signerId} signed for ${s.approver}, and only a channel may sign for someone else`);
  return {
    stepId: s.stepId,
    planHash: s.planHash,
    approver: s.approver,
    reason: s.reason,
    verified: true,
    keyFingerprint: verdictOfKey.fingerprint,
    ...(signerId !== s.approver ? { vouchedBy: signerId } : {}),
    statement: decision.statement,
  };
}

/** The shortest plan hash a decision may give: the digits the CLI, Slack and the timeline show. */
export const minPlanHashPrefix = 12;

/**
 * Why the named plan is not the pending one, or undefined when it is. A decision may give the hash
 * as shown, from 12 digits (a signed statement's schema already demands the whole hash).
 */
export function planHashProblem(given: string, pending: string): string | undefined {
  const isPrefix = pending.startsWith(given.toLowerCase());
  if (isPrefix && given.length >= minPlanHashPrefix) return undefined;
  if (isPrefix) return `plan ${given || '(none)'} is too short to name a plan: give at least ${minPlanHashPrefix} digits of ${pending}`;
  return `the decision names plan ${given || '(none)'}, but the pending plan is ${pending}: review the current plan and decide again`;
}

/**
 * The one rule set for a decision, used by the Update validator (refused synchronously) and by
 * the Signal handler (refusal recorded in the timeline). Pure, so both paths agree.
 */
export function checkDecision(decision: Decision, verdict: DecisionVerdict, context: DecisionContext): DecisionCheck {
  const { pending } = context;
  if (!decision || typeof decision !== 'object') return refuse('malformed', 'a decision needs a signed statement (or stepId, planHash, approver and reason)');
  let fields: Fields;
  if (decision.statement !== undefined || decision.signature !== undefined) {
    const signed = signedFields(decision, verdict, context);
    if ('ok' in signed) return signed;
    fields = signed;
  } else {
    if (context.requireSignatures) {
      return refuse(
        'unsigned',
        "an unsigned decision is refused: decisions here must be signed with the approver's SSH key (runbook approve signs; in the Temporal UI paste what runbook sign prints)",
      );
    }
    fields = { stepId: decision.stepId!, planHash: decision.planHash!, approver: decision.approver!, reason: decision.reason!, verified: false };
  }
  if (!pending) return refuse('not-pending', `step "${fields.stepId}" is not waiting for approval (nothing is)`);
  if (fields.stepId !== pending.stepId) return refuse('not-pending', `step "${fields.stepId}" is not waiting for approval (pending: "${pending.stepId}")`);
  if (!fields.reason?.trim()) return refuse('malformed', 'a reason is required');
  if (!fields.approver?.trim()) return refuse('malformed', 'the approver is required');
  const planProblem = planHashProblem(String(fields.planHash ?? ''), pending.planHash);
  if (planProblem) return refuse('wrong-plan', planProblem);
  fields = { ...fields, planHash: pending.planHash };
  if (context.decided) return refuse('already-decided', `step "${fields.stepId}" was already decided`);
  if (verdict === 'approve' && (fields.approver === context.provenInitiator || fields.approver === context.startedBy)) {
    return refuse('four-eyes', `four-eyes rule: ${fields.approver} started this run and cannot approve its steps`);
  }
  const person = context.approvers.find((a) => a.id === fields.approver && isPerson(a));
  if (!person) return refuse('unknown-approver', `${fields.approver} is not a configured approver`);
  const channel = fields.vouchedBy ? context.approvers.find((a) => a.id === fields.vouchedBy) : undefined;
  const role = pending.allowedRoles.find((r) => person.roles.includes(r) && (!channel || (channel.vouchesFor ?? []).includes(r)));
  if (!role) {
    const through = channel ? ` through ${channel.id} (vouches for ${(channel.vouchesFor ?? []).join(', ') || 'no role'})` : '';
    return refuse('role-not-allowed', `${fields.approver} (${person.roles.join(', ')})${through} may not decide "${fields.stepId}": needs one of ${pending.allowedRoles.join(', ')}`);
  }
  if (verdict === 'approve' && context.approvedBy.includes(fields.approver)) {
    return refuse('duplicate-approver', `${fields.approver} already approved "${fields.stepId}": the quorum needs distinct approvers`);
  }
  return { ok: true, decision: { ...fields, role } };
}
