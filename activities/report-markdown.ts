import { textsFor, type Language, type Texts } from '../common/texts';
import type { IncidentFindings, PlannedStep, RunbookOutcome, TimelineEntry } from '../common/runbook';

export interface IncidentReport extends IncidentFindings {
  runbook: string;
  workflowId: string;
  runId: string;
  target: string;
  severity: string;
  mode: string;
  startedBy: string;
  outcome: RunbookOutcome;
  /** English when absent (runs begun before languages). */
  language?: Language;
  summary: string;
  plan: PlannedStep[];
  timeline: TimelineEntry[];
  /** S3 keys of evidence collected during the run. */
  evidence: Array<{ key: string; size: number; sha256: string; what: string }>;
}

function escapeCell(text: string | undefined): string {
  return (text ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** For decisions: signed by which key, or unverified. */
function proofOf(entry: { verified?: boolean; keyFingerprint?: string }, t: Texts): string | undefined {
  if (entry.verified === undefined) return undefined;
  return entry.verified ? t.signedBy(entry.keyFingerprint ?? '') : t.unverified;
}

/** The manual's incident report (事后分析), in the run's language: timeline, impact, root cause, solution, prevention. */
export function renderIncidentMarkdown(report: IncidentReport): string {
  const t = textsFor(report.language);
  const lines = [
    t.reportTitle(t.runbook(report.runbook), report.target),
    '',
    t.reportOutcome(t.outcome(report.outcome), report.summary),
    t.reportRunFields(report.severity, report.mode, report.startedBy),
    t.reportRun(report.workflowId, report.runId),
    '',
    t.timelineHeading,
    '',
    t.timelineHeader,
    '|---|---|---|---|---|',
    // By time: entries the run found (a person's rollout before the incident) come before the run's own.
    ...[...report.timeline]
      .sort((a, b) => Date.parse(a.at) - Date.parse(b.at))
      .map(
        (e) =>
          `| ${e.at} | ${t.event(e.event)} | ${escapeCell(e.title ?? e.stepId)} | ${escapeCell([e.by, e.role, e.channel, proofOf(e, t)].filter(Boolean).join(', '))} | ${escapeCell([e.reason, e.detail].filter(Boolean).join(' — '))} |`,
      ),
    '',
    t.impactHeading,
    '',
    report.impact,
    '',
    t.rootCauseHeading,
    '',
    report.rootCause,
    '',
    t.solutionHeading,
    '',
    report.solution,
    '',
    ...(report.plan.length > 0 ? [t.plannedChangesHeading, '', ...report.plan.map((p) => t.plannedChange(p.title, p.change.summary, p.planHash.slice(0, 12))), ''] : []),
    t.preventionHeading,
    '',
    report.prevention,
    '',
    ...(report.evidence.length > 0 ? [t.evidenceHeading, '', ...report.evidence.map((e) => t.evidenceLine(e.what, e.key, e.size, e.sha256.slice(0, 16))), ''] : []),
  ];
  return lines.join('\n');
}
