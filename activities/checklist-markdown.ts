import { byUrgency, type CheckRow, type ChecklistCounts, type CheckStatus } from '../common/checklist';
import { textsFor, type Language } from '../common/texts';

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
  /** English when absent (runs begun before languages). */
  language?: Language;
  /** Destructive steps of the run (weekly cleanup) and what became of them, one line each. */
  changes: string[];
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The checklist as people read it, in the run's language: FAILs first, then one table per section in the manual's order. */
export function renderChecklistMarkdown(report: ChecklistReport): string {
  const t = textsFor(report.language);
  const sections = [...new Set(report.checks.map((c) => c.section))];
  const urgent = byUrgency(report.checks).filter((c) => c.status !== 'PASS');
  const row = (c: CheckRow) => `| ${t.checkStatus(c.status)} | ${cell(c.title)} | ${cell(c.value)} | ${cell(c.threshold)} | ${cell(c.detail)} |`;
  const header = [t.checklistHeader, '|---|---|---|---|---|'];
  return [
    t.checklistTitle(t.runbook(report.runbook), t.overallStatus(report.overall)),
    '',
    `- ${t.checklistCounts(report.counts)}`,
    t.checklistTarget(report.target, report.startedBy, report.scheduled),
    t.checklistRun(report.workflowId, report.runId, report.startedAt, report.finishedAt),
    '',
    ...(urgent.length > 0 ? [t.needsAttention, '', ...header, ...urgent.map(row), ''] : []),
    ...(report.changes.length > 0 ? [t.changesHeading, '', ...report.changes.map((line) => `- ${line}`), ''] : []),
    ...sections.flatMap((section) => [`## ${section}`, '', ...header, ...report.checks.filter((c) => c.section === section).map(row), '']),
  ].join('\n');
}
