import type { PendingApproval, RunbookStatus, TimelineEntry } from '../../common/runbook';
import { textsFor, type Texts } from '../../common/texts';

/** How many timeline entries and plan-detail lines the UI's Current Details shows; the rest is in `runbook status`. */
const lastEntries = 5;
const detailLines = 40;

/**
 * The run as the Temporal UI's Current Details shows it (Markdown), in the run's language: where
 * it stands, the plan waiting for a decision with the exact command and Update input to decide
 * it, the last events, and the report when there is one. Pure: the kernel sets it after each change.
 */
export function currentDetails(workflowId: string, status: RunbookStatus, t: Texts = textsFor(undefined)): string {
  const { report } = status;
  const where =
    status.state === 'finished'
      ? t.stateFinished(status.outcome ? t.outcome(status.outcome) : '')
      : status.state === 'waiting-for-approval'
        ? t.stateWaitingForApproval(status.pending?.stepId ?? '')
        : status.state === 'waiting-for-lock'
          ? t.stateWaitingForLock(status.target)
          : t.stateRunning(status.currentStep);
  const lines = [
    t.detailsHeading(t.runbook(status.runbook), status.target),
    t.runLine({ where, done: status.stepsDone, declared: status.stepsDeclared, mode: status.mode, severity: status.severity, startedBy: status.startedBy }),
  ];
  if (status.pending) lines.push('', ...pendingText(workflowId, status.pending, t));
  if (report) lines.push('', t.detailsReport(report.markdownKey, report.jsonKey));
  lines.push('', t.lastEvents, ...status.timeline.slice(-lastEntries).map((e) => entryText(e, t)));
  if (status.timeline.length > lastEntries) lines.push(t.earlierEvents(status.timeline.length - lastEntries, `runbook status ${workflowId}`));
  return lines.join('\n');
}

function pendingText(workflowId: string, pending: PendingApproval, t: Texts): string[] {
  const lines = [t.waitingForDecision(pending.stepId, pending.title), `${t.changeLabel} ${pending.change.summary}`];
  if (pending.change.details !== undefined) {
    const details = JSON.stringify(pending.change.details, null, 2).split('\n');
    lines.push(t.beforeAfterLabel, '```json', ...details.slice(0, detailLines), ...(details.length > detailLines ? [t.moreLines(details.length - detailLines)] : []), '```');
  }
  const unverified = pending.verification === 'unverified';
  lines.push(
    `${t.planLabel} \`${pending.planHash}\``,
    t.approvalLine({
      tier: t.tier(pending.tier),
      until: pending.until,
      deciders: pending.approvers.join(', ') || pending.allowedRoles.map(t.tier).join(', '),
      given: pending.approvals?.length ?? 0,
      required: pending.required ?? 1,
      unverified,
    }),
    '',
    t.decideFromShell,
    '```',
    `runbook approve ${workflowId} --step ${pending.stepId} --plan ${pending.planHash} --reason "<why>" --as <you>`,
    '```',
    t.decideHere,
    '```json',
    unverified
      ? JSON.stringify({ stepId: pending.stepId, planHash: pending.planHash, approver: '<you>', reason: '<why>' })
      : `${t.signedInputHint} runbook sign ${workflowId} --step ${pending.stepId} --plan ${pending.planHash} --reason "<why>" --as <you>`,
    '```',
  );
  return lines;
}

function entryText(e: TimelineEntry, t: Texts): string {
  const who = [e.by, e.role, e.channel].filter(Boolean).join(', ');
  return `- ${e.at} **${t.event(e.event)}**${e.stepId ? ` ${e.stepId}` : ''}${who ? ` (${who})` : ''}${e.reason ? ` "${e.reason}"` : ''}${e.detail ? `: ${e.detail}` : ''}`;
}
