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
  summary: string;
  plan: PlannedStep[];
  timeline: TimelineEntry[];
  /** S3 keys of evidence collected during the run. */
  evidence: Array<{ key: string; size: number; sha256: string; what: string }>;
}

function escapeCell(text: string | undefined): string {
  return (text ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The manual's incident report (事后分析): timeline, impact, root cause, solution, prevention. */
/** For decisions: signed by which key, or unverified. */
function proofOf(entry: { verified?: boolean; keyFingerprint?: string }): string | undefined {
  if (entry.verified === undefined) return undefined;
  return entry.verified ? `signed ${entry.keyFingerprint ?? ''}`.trim() : 'unverified';
}

export function renderIncidentMarkdown(report: IncidentReport): string {
  const lines = [
    `# Incident report: ${report.runbook} on ${report.target}`,
    '',
    `- Outcome: **${report.outcome}** — ${report.summary}`,
    `- Severity: ${report.severity}; mode: ${report.mode}; started by: ${report.startedBy}`,
    `- Run: ${report.workflowId} (${report.runId})`,
    '',
    '## Timeline',
    '',
    '| time | event | step | by | detail |',
    '|---|---|---|---|---|',
    ...report.timeline.map(
      (e) =>
        `| ${e.at} | ${e.event} | ${escapeCell(e.title ?? e.stepId)} | ${escapeCell([e.by, e.role, e.channel, proofOf(e)].filter(Boolean).join(', '))} | ${escapeCell([e.reason, e.detail].filter(Boolean).join(' — '))} |`,
    ),
    '',
    '## Impact',
    '',
    report.impact,
    '',
    '## Root cause',
    '',
    report.rootCause,
    '',
    '## Solution',
    '',
    report.solution,
    '',
    ...(report.plan.length > 0 ? ['### Planned changes', '', ...report.plan.map((p) => `- ${p.title}: ${p.change.summary} (plan ${p.planHash.slice(0, 12)})`), ''] : []),
    '## Prevention',
    '',
    report.prevention,
    '',
    ...(report.evidence.length > 0 ? ['## Evidence', '', ...report.evidence.map((e) => `- ${e.what}: \`${e.key}\` (${e.size} bytes, sha256 ${e.sha256.slice(0, 16)})`), ''] : []),
  ];
  return lines.join('\n');
}
