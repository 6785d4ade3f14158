import type { PendingApproval, RunbookStatus, TimelineEntry } from '../../common/runbook';

/** How many timeline entries and plan-detail lines the UI's Current Details shows; the rest is in `runbook status`. */
const lastEntries = 5;
const detailLines = 40;

/**
 * The run as the Temporal UI's Current Details shows it (Markdown): where it stands, the plan
 * waiting for a decision with the exact command and Update input to decide it, the last events,
 * and the report when there is one. Pure: the kernel sets it after each change of the run.
 */
export function currentDetails(workflowId: string, status: RunbookStatus): string {
  const { report } = status;
  const steps = `step ${status.stepsDone} of ${status.stepsDeclared} done`;
  const where =
    status.state === 'finished'
      ? `**finished: ${status.outcome}**`
      : status.state === 'waiting-for-approval'
        ? `**waiting for approval** of "${status.pending?.stepId}"`
        : status.state === 'waiting-for-lock'
          ? `**waiting for the lock** on ${status.target}`
          : `**running**${status.currentStep ? ` "${status.currentStep}"` : ''}`;
  const lines = [`## ${status.runbook} on ${status.target}`, `${where}; ${steps}. Mode ${status.mode}, severity ${status.severity}, started by ${status.startedBy}.`];
  if (status.pending) lines.push('', ...pendingText(workflowId, status.pending));
  if (report) lines.push('', `**Incident report:** \`${report.markdownKey}\` (JSON: \`${report.jsonKey}\`)`);
  lines.push('', '### Last events', ...status.timeline.slice(-lastEntries).map(entryText));
  if (status.timeline.length > lastEntries) lines.push(`- … ${status.timeline.length - lastEntries} earlier: \`runbook status ${workflowId}\``);
  return lines.join('\n');
}

function pendingText(workflowId: string, pending: PendingApproval): string[] {
  const lines = [`### Waiting for a decision: "${pending.stepId}" (${pending.title})`, `**Change:** ${pending.change.summary}`];
  if (pending.change.details !== undefined) {
    const details = JSON.stringify(pending.change.details, null, 2).split('\n');
    lines.push('**Before → after:**', '```json', ...details.slice(0, detailLines), ...(details.length > detailLines ? [`… ${details.length - detailLines} more lines`] : []), '```');
  }
  const given = pending.approvals?.length ?? 0;
  const unverified = pending.verification === 'unverified';
  lines.push(
    `**Plan:** \`${pending.planHash}\``,
    `Tier ${pending.tier} until ${pending.until}; may decide: ${pending.approvers.join(', ') || pending.allowedRoles.join(', ')}; approvals ${given} of ${pending.required ?? 1}${unverified ? '; **UNVERIFIED**: no approver keys configured' : ''}.`,
    '',
    '**Decide from a shell:**',
    '```',
    `runbook approve ${workflowId} --step ${pending.stepId} --plan ${pending.planHash} --reason "<why>" --as <you>`,
    '```',
    '**Decide here:** Send an Update → `approve` (or `reject`) with this input:',
    '```json',
    unverified
      ? JSON.stringify({ stepId: pending.stepId, planHash: pending.planHash, approver: '<you>', reason: '<why>' })
      : `the JSON printed by: runbook sign ${workflowId} --step ${pending.stepId} --plan ${pending.planHash} --reason "<why>" --as <you>`,
    '```',
  );
  return lines;
}

function entryText(e: TimelineEntry): string {
  const who = [e.by, e.role, e.channel].filter(Boolean).join(', ');
  return `- ${e.at} **${e.event}**${e.stepId ? ` ${e.stepId}` : ''}${who ? ` (${who})` : ''}${e.reason ? ` "${e.reason}"` : ''}${e.detail ? `: ${e.detail}` : ''}`;
}
