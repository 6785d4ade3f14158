import type { RunbookStatus } from '../../common/runbook';
import type { RunRecord, RunSummary } from '../runbook-client';

/** One line on where a run is: steps done, and what it waits for. */
export function progressLine(status: RunbookStatus): string {
  const steps = `steps ${status.stepsDone}/${status.stepsDeclared}`;
  if (status.state === 'finished') return `${status.runbook} finished: ${status.outcome} (${steps})`;
  if (status.pending) {
    const p = status.pending;
    const quorum = (p.required ?? 1) > 1 ? `; approvals ${p.approvals?.length ?? 0} of ${p.required}` : '';
    const unverified = p.verification === 'unverified' ? '; UNVERIFIED' : '';
    return `${status.runbook}: ${steps}, waiting for approval of "${p.stepId}" (${p.change.summary}); plan ${p.planHash.slice(0, 12)}; tier ${p.tier} until ${p.until}; may decide: ${p.approvers.join(', ') || p.allowedRoles.join(', ')}${quorum}${unverified}`;
  }
  if (status.state === 'waiting-for-lock') return `${status.runbook}: ${steps}, waiting for the lock on ${status.target}`;
  return `${status.runbook}: ${steps}${status.currentStep ? `, running "${status.currentStep}"` : ''}`;
}

export function statusText(workflowId: string, status: RunbookStatus): string {
  const lines = [`${workflowId}`, `  ${progressLine(status)}`, `  mode ${status.mode}, severity ${status.severity}, target ${status.target}, started by ${status.startedBy}`];
  if (status.alertsFiring?.length) lines.push(`  wanted by firing alerts: ${status.alertsFiring.map((a) => `${a.alert} (${a.fingerprint})`).join(', ')}`);
  if (status.plan.length > 0) {
    lines.push('  plan:');
    for (const step of status.plan) lines.push(`    ${step.stepId}: ${step.change.summary} [${step.planHash.slice(0, 12)}]${step.change.needed ? '' : ' (nothing to change)'}`);
  }
  lines.push('  timeline:');
  for (const e of status.timeline) {
    const who = [e.by, e.role, e.channel].filter(Boolean).join(', ');
    lines.push(`    ${e.at} ${e.event}${e.stepId ? ` ${e.stepId}` : ''}${who ? ` (${who})` : ''}${e.reason ? ` "${e.reason}"` : ''}${e.detail ? `: ${e.detail}` : ''}`);
  }
  return lines.join('\n');
}

export function runsTable(runs: RunSummary[]): string {
  if (runs.length === 0) return 'no runs';
  const rows = runs.map((r) => [r.workflowId, r.runbook, r.severity ?? '', r.approvalState ?? '', r.status, r.startTime]);
  const header = ['WORKFLOW ID', 'RUNBOOK', 'SEV', 'APPROVAL', 'STATUS', 'STARTED'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The pending plan as a person must see it before deciding: summary, before → after, hash. */
export function pendingPlanText(workflowId: string, pending: NonNullable<RunbookStatus['pending']>): string {
  const lines = [`${workflowId}: step "${pending.stepId}" (${pending.title}) waits for a decision`, `  change:  ${pending.change.summary}`];
  if (pending.change.details !== undefined) {
    const details = JSON.stringify(pending.change.details, null, 2).split('\n');
    lines.push('  details (before → after):', ...details.slice(0, 60).map((l) => `    ${l}`));
    if (details.length > 60) lines.push(`    … ${details.length - 60} more lines (runbook status ${workflowId} --json)`);
  }
  lines.push(`  plan:    ${pending.planHash}`);
  const given = (pending.approvals ?? []).map((a) => `${a.approver}${a.verified ? '' : ' (unverified)'}`);
  lines.push(
    `  approvals: ${given.length} of ${pending.required ?? 1}${given.length ? ` (${given.join(', ')})` : ''}; ${pending.verification === 'unverified' ? 'UNVERIFIED: no approver keys configured' : 'signed decisions only'}`,
  );
  return lines.join('\n');
}

/** A run as the server records it, when no worker answers for it: status, times, and how it ended. */
export function runRecordText(record: RunRecord, why: string): string {
  const ended = record.failure ? `: ${record.failure}` : record.outcome ? `: ${record.outcome}` : '';
  return [
    record.workflowId,
    `  ${record.runbook} ${record.status}${ended}`,
    `  started ${record.startTime}${record.closeTime ? `, closed ${record.closeTime}` : ''} (run ${record.runId})`,
    `  ${why}: this is the Temporal server's record; the plan and timeline need a worker on the task queue`,
  ].join('\n');
}
