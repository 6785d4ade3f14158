import { errorText } from '../../common/failures';
import { log, patched, workflowInfo } from '@temporalio/workflow';
import { byUrgency, countLines, countStatuses, worstStatus, type CheckRow, type ChecklistResult, type CheckStatus } from '../../common/checklist';
import type { ChecklistThresholds } from '../../config/schema';
import { RunbookRun, type RunbookEntry, type RunInput } from './runbook-run';
import { read } from '../activity-proxies';

/** A container's newest lines scanned for line patterns: counts and a matching line or two, never the log. */
export interface LogScan {
  pod: string;
  lines: number;
  truncated: boolean;
  /** Where the log went in S3 (absent on runs begun before logs went to evidence). */
  evidenceKey?: string;
  matches: Record<string, { count: number; first?: string; last?: string }>;
}

const s3Safe = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, '_');

/** Builds a row of the current section: what was measured, against what, with which status. */
export type RowBuilder = (row: { id: string; title: string; status: CheckStatus; value: string; threshold?: string; detail: string }) => CheckRow;

/**
 * The daily/weekly/monthly checklists on the runbook kernel: each check is a read step that adds
 * PASS/WARN/FAIL rows; a check that cannot run (metrics API absent, Prometheus down) becomes a WARN
 * row with the reason and the checklist goes on. At the end the report goes to S3 (JSON and
 * Markdown) and a summary notification lists FAILs first.
 */
export class Checklist {
  private readonly rows: CheckRow[] = [];
  private readonly changes: string[] = [];
  private logsToEvidence: boolean | undefined;

  private constructor(
    readonly run: RunbookRun,
    readonly thresholds: ChecklistThresholds,
    private readonly startedAt: string,
  ) {}

  /** Starts a checklist run on `target` (what it looks at) with the run fields of its input. */
  static async begin(entry: RunbookEntry, input: RunInput, checks: readonly string[]): Promise<Checklist> {
    const startedAt = new Date().toISOString();
    const run = await RunbookRun.begin(entry, input, checks);
    return new Checklist(run, await read.loadChecklistThresholds(), startedAt);
  }

  /** One check of the manual's list, as a read step; its rows join the report. */
  async check(stepId: string, section: string, title: string, measure: (row: RowBuilder) => Promise<CheckRow[]>): Promise<CheckRow[]> {
    const row: RowBuilder = (r) => ({ section, threshold: '', ...r });
    let rows: CheckRow[];
    try {
      rows = await this.run.read(
        stepId,
        title,
        () => measure(row),
        (rs) => rs.map((r) => `${r.status} ${r.title}: ${r.value}`).join('; '),
      );
    } catch (err) {
      const t = this.run.texts;
      rows = [row({ id: stepId, title, status: 'WARN', value: t.notMeasured, detail: t.checkCouldNotRun(errorText(err)) })];
    }
    this.rows.push(...rows);
    return rows;
  }

  /**
   * A deployment's newest log lines (at most maxBytes) scanned for `patterns`. The log goes from
   * the activity to S3 evidence and the history keeps counts and the key: three 256 KiB logs a
   * day would otherwise sit in every daily run's history. Runs begun before read it as they did.
   */
  async scanLogs(namespace: string, deployment: string, limits: { tailLines?: number; maxBytes: number }, patterns: Record<string, RegExp>): Promise<LogScan> {
    this.logsToEvidence ??= patched('checklist-logs-to-evidence');
    if (this.logsToEvidence) {
      const { workflowId, runId } = workflowInfo();
      const key = `evidence/${this.run.identity.name}/${this.startedAt.slice(0, 10)}/${s3Safe(workflowId)}-${runId}/logs/${s3Safe(deployment)}.log`;
      const sources = Object.fromEntries(Object.entries(patterns).map(([name, p]) => [name, { source: p.source, flags: p.flags }]));
      const scan = await read.scanLogsToEvidence({ namespace, deployment, ...limits, key, patterns: sources });
      return { pod: scan.pod, lines: scan.lines, truncated: scan.truncated, evidenceKey: scan.evidence.key, matches: scan.matches };
    }
    const logs = await read.getContainerLogs({ namespace, deployment, ...limits });
    const matches = Object.fromEntries(Object.entries(patterns).map(([name, pattern]) => [name, countLines(logs.text, pattern)]));
    return { pod: logs.pod, lines: logs.lines, truncated: logs.truncated, matches };
  }

  /** A line for the report's "Changes" part (what a destructive step of the checklist did). */
  noteChange(line: string): void {
    this.changes.push(line);
  }

  /** Writes the report, sends the summary and ends the run. */
  async finish(): Promise<ChecklistResult> {
    const { workflowId, runId } = workflowInfo();
    const identity = this.run.identity;
    const t = this.run.texts;
    const tally = () => {
      const counts = countStatuses(this.rows);
      const overall = worstStatus(this.rows.map((r) => r.status));
      return { counts, overall, summary: t.checklistSummary(t.overallStatus(overall), t.checklistCounts(counts)) };
    };
    const { counts, overall } = tally();
    let checklistReport: ChecklistResult['checklistReport'];
    try {
      checklistReport = await read.writeChecklistReport({
        runbook: identity.name,
        workflowId,
        runId,
        target: identity.target,
        startedBy: identity.startedBy,
        scheduled: identity.scheduled,
        startedAt: this.startedAt,
        finishedAt: new Date().toISOString(),
        overall,
        counts,
        checks: this.rows,
        changes: this.changes,
        language: identity.language,
      });
    } catch (err) {
      // S3 being down is itself a finding: the rows still reach the result and the summary.
      this.rows.push({
        id: 'report',
        section: t.reportRowSection,
        title: t.reportRowTitle,
        status: 'WARN',
        value: t.notSaved,
        threshold: '',
        detail: t.reportNotWritten(errorText(err)),
      });
    }
    // Counted again: a report that could not be saved added a row.
    const { summary, ...final } = tally();
    const urgent = byUrgency(this.rows).filter((r) => r.status !== 'PASS');
    try {
      await read.notify({
        title: t.checklistSummary(t.runbook(identity.name), summary),
        text:
          urgent.length > 0
            ? urgent.map((r) => `${t.overallStatus(r.status)} ${r.title}: ${r.value}${r.threshold ? ` (${r.threshold})` : ''} — ${r.detail}`).join('\n')
            : t.checklistAllPass(final.counts.PASS),
        severity: final.overall === 'FAIL' ? 'P2' : 'info',
        fields: { [t.fieldLabels.run]: workflowId, [t.fieldLabels.target]: identity.target, [t.fieldLabels.report]: checklistReport?.markdownKey ?? t.notSaved },
        dedupeKey: `${workflowId}/${runId}/summary`,
      });
    } catch (err) {
      // The report is in S3 already; an undeliverable summary must not fail the checklist.
      log.warn('checklist summary notification failed', { error: errorText(err) });
    }
    const result = await this.run.finish(summary);
    return { ...result, ...final, checks: this.rows, ...(checklistReport ? { checklistReport } : {}) };
  }
}
