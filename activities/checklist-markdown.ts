import { byUrgency, type CheckRow, type ChecklistCounts, type CheckStatus } from '../common/checklist';

export interface ChecklistReport {
  runbook: string;
  workflowId: string;
  runId: string;
  target: string;
  startedBy: string;
  scheduled: boolean;
  startedAt: string;
  finishedAt: string;
  overall: CheckStatus;
  counts: ChecklistCounts;
  checks: CheckRow[];
  /** Destructive steps of the run (weekly cleanup) and what became of them, one line each. */
  changes: string[];
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const mark: Record<CheckStatus, string> = { FAIL: '❌ FAIL', WARN: '⚠️ WARN', PASS: '✅ PASS' };

/** The checklist as people read it: FAILs first, then one table per section in the manual's order. */
export function renderChecklistMarkdown(report: ChecklistReport): string {
  const sections = [...new Set(report.checks.map((c) => c.section))];
  const urgent = byUrgency(report.checks).filter((c) => c.status !== 'PASS');
  const row = (c: CheckRow) => `| ${mark[c.status]} | ${cell(c.title)} | ${cell(c.value)} | ${cell(c.threshold)} | ${cell(c.detail)} |`;
  const header = ['| status | check | value | threshold | detail |', '|---|---|---|---|---|'];
  return [
    `# ${report.runbook}: ${report.overall}`,
    '',
    `- ${report.counts.FAIL} FAIL, ${report.counts.WARN} WARN, ${report.counts.PASS} PASS`,
    `- Target: ${report.target}; started by ${report.startedBy}${report.scheduled ? ' (schedule)' : ''}`,
    `- Run: ${report.workflowId} (${report.runId}), ${report.startedAt} – ${report.finishedAt}`,
    '',
    ...(urgent.length > 0 ? ['## Needs attention', '', ...header, ...urgent.map(row), ''] : []),
    ...(report.changes.length > 0 ? ['## Changes', '', ...report.changes.map((line) => `- ${line}`), ''] : []),
    ...sections.flatMap((section) => [`## ${section}`, '', ...header, ...report.checks.filter((c) => c.section === section).map(row), '']),
  ].join('\n');
}
