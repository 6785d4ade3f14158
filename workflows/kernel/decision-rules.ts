import type { ApproverRole, Decision, DecisionVerdict, PendingApproval } from '../../common/runbook';

export interface DecisionContext {
  pending: PendingApproval | undefined;
  startedBy: string;
  approvers: Array<{ id: string; roles: ApproverRole[] }>;
}

export type DecisionCheck = { ok: true; role: ApproverRole } | { ok: false; refusal: string };

/**
 * The one rule set for a decision, used by the Update validator (refused synchronously) and by
 * the Signal handler (refusal recorded in the timeline). Pure, so both paths agree.
 */
export function checkDecision(decision: Decision, verdict: DecisionVerdict, context: DecisionContext): DecisionCheck {
  const { pending } = context;
  if (!decision || typeof decision !== 'object') return { ok: false, refusal: 'a decision needs stepId, planHash, approver and reason' };
  if (!pending) return { ok: false, refusal: `step "${decision.stepId}" is not waiting for approval (nothing is)` };
  if (decision.stepId !== pending.stepId) return { ok: false, refusal: `step "${decision.stepId}" is not waiting for approval (pending: "${pending.stepId}")` };
  if (!decision.reason?.trim()) return { ok: false, refusal: 'a reason is required' };
  if (!decision.approver?.trim()) return { ok: false, refusal: 'the approver is required' };
  if (decision.planHash !== pending.planHash) {
    return {
      ok: false,
      refusal: `the decision names plan ${String(decision.planHash).slice(0, 12)}, but the pending plan is ${pending.planHash.slice(0, 12)}: review the current plan and decide again`,
    };
  }
  if (verdict === 'approve' && decision.approver === context.startedBy) {
    return { ok: false, refusal: `four-eyes rule: ${decision.approver} started this run and cannot approve its steps` };
  }
  const person = context.approvers.find((a) => a.id === decision.approver);
  if (!person) return { ok: false, refusal: `${decision.approver} is not a configured approver` };
  const role = pending.allowedRoles.find((r) => person.roles.includes(r));
  if (!role) {
    return { ok: false, refusal: `${decision.approver} (${person.roles.join(', ')}) may not decide "${pending.stepId}": needs one of ${pending.allowedRoles.join(', ')}` };
  }
  return { ok: true, role };
}
