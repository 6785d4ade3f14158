import { patched, workflowInfo } from '@temporalio/workflow';
import type { CollectAuditResult } from '../activities/audit-evidence';
import type { CollectEventsResult, CollectLogsResult, SnapshotConfigResult } from '../activities/incident-evidence';
import { type PostIncidentReviewInput } from '../common/inputs/post-incident-review';
import type { IncidentFindings, RunbookResultBase } from '../common/runbook';
import { RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read, wait } from './activity-proxies';
import { catalog } from '../common/catalog';
import { auditChangeLine, auditEvidencePatch, auditOfResult, auditSummary, changesToName, collectAuditEvidence, type AuditOfReview } from './post-incident-review-audit';

/** Reading Kubernetes and writing S3 in one activity takes a while for big logs: these heartbeat. */

export interface EvidenceItem {
  key: string;
  size: number;
  sha256: string;
  what: string;
}

export interface PostIncidentReviewResult extends RunbookResultBase {
  incidentId: string;
  title?: string;
  /** The window the logs and events were collected for (ISO). */
  window: { since: string; until: string };
  /** Every object written to S3: keys, sizes and digests only. */
  evidence: EvidenceItem[];
  logs: { found: boolean; pods: number; podsOmitted: number; objects: number; lines: number; bytes: number; errorLines: number; failures: number; truncated: number };
  events: { total: number; warnings: number };
  snapshot: { counts: Record<string, number>; secrets: number; unavailable: string[]; changedInWindow: number };
  /**
   * The API audit events of the window (runs begun after the audit evidence): whether a source is
   * configured, why it could not be read, counts, and the changes by non-system users (at most 20).
   */
  audit?: AuditOfReview;
  /** Which of the report's parts were generated because the input left them out. */
  generated: Array<keyof IncidentFindings>;
}

const kib = (bytes: number) => (bytes >= 1_048_576 ? `${(bytes / 1_048_576).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);
const short = (sha256: string) => sha256.slice(0, 12);
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const s3Safe = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, '_');

function describeLogs(l: CollectLogsResult): string {
  if (!l.found) return `deployments.apps/${l.deployment} not found in ${l.namespace}: no app logs`;
  const folder = l.objects[0]?.key.replace(/[^/]+\/[^/]+$/, '');
  return `${l.pods.length} pods (${l.selector}), ${l.objects.length} container logs: ${l.totals.lines} lines, ${kib(l.totals.bytes)}, ${l.totals.errorLines} error lines${l.objects.some((o) => o.truncated) ? ', some capped' : ''}${
    l.failures.length
      ? `; ${l.failures.length} not readable (${l.failures
          .map((f) => `${f.pod}/${f.container}`)
          .slice(0, 3)
          .join(', ')})`
      : ''
  }${folder ? ` -> ${folder}` : ''}`;
}

function describeEvents(e: CollectEventsResult): string {
  const top = e.reasons
    .slice(0, 3)
    .map((r) => `${r.type} ${r.reason} x${r.occurrences}`)
    .join(', ');
  return `${e.total} events (${e.warnings} Warning)${top ? `: ${top}` : ''} -> ${e.key} (${kib(e.size)}, sha256 ${short(e.sha256)})`;
}

function describeSnapshot(s: SnapshotConfigResult): string {
  const counts = Object.entries(s.counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  return `${counts}${s.unavailable.length ? `; not readable: ${s.unavailable.map((u) => u.kind).join(', ')}` : ''}; ${s.changedInWindowTotal} changed in the window -> ${s.key} (${kib(s.size)}, sha256 ${short(s.sha256)})`;
}

/** The report's parts a person left out, generated from what was collected (counts and names, never log text). */
function generatedFindings(
  input: { namespace: string; appDeployment: string; sinceMinutes: number },
  logs: CollectLogsResult,
  events: CollectEventsResult,
  snapshot: SnapshotConfigResult,
  audit?: CollectAuditResult,
): IncidentFindings {
  const note = '(Generated from the collected evidence; the incident owner should complete it.)';
  const app = `${input.namespace}/${input.appDeployment}`;
  const ready = logs.pods.filter((p) => p.ready).length;
  const restarts = logs.pods.reduce((n, p) => n + p.restarts, 0);
  const waiting = logs.pods.filter((p) => p.waitingReason).map((p) => `${p.name} ${p.waitingReason}`);
  const oom = logs.pods.filter((p) => p.lastTerminationReason === 'OOMKilled').map((p) => p.name);
  const warningReasons = events.reasons.filter((r) => r.type === 'Warning');
  const changes = snapshot.changedInWindow;
  const errorPods = [...new Set(logs.objects.filter((o) => o.errorLines > 0).map((o) => o.pod))];

  const impact = logs.found
    ? `${note} At the review, ${ready} of ${logs.pods.length} pods of ${app} were ready${restarts ? ` (${restarts} restarts in total)` : ''}${waiting.length ? `; waiting: ${waiting.join(', ')}` : ''}. In the last ${input.sinceMinutes} minutes: ${events.warnings} Warning events in ${input.namespace}, ${logs.totals.errorLines} error lines in the app logs${errorPods.length ? ` of ${errorPods.join(', ')}` : ''}. Who was affected and for how long is not known to the automation.`
    : `${note} ${app} does not exist (any more); ${events.warnings} Warning events in ${input.namespace} in the last ${input.sinceMinutes} minutes.`;
  const auditChanges = audit?.changes ?? [];
  const signals = [
    // Who changed what before the incident is what an SRE looks for first.
    ...(auditChanges.length
      ? [
          `changes by people in the window (API audit log): ${changesToName(auditChanges, 5)
            .map(auditChangeLine)
            .join('; ')}${audit!.changesTotal > 5 ? ` (and ${audit!.changesTotal - 5} more, see the audit evidence)` : ''}`,
        ]
      : []),
    ...(oom.length ? [`OOMKilled containers in ${oom.join(', ')}`] : []),
    ...(waiting.length ? [`pods waiting: ${waiting.join(', ')}`] : []),
    ...(changes.length
      ? [
          `changed in the window: ${changes
            .slice(0, 5)
            .map((c) => `${c.kind} ${c.name} at ${c.at}${c.manager ? ` by ${c.manager}` : ''}`)
            .join('; ')}${snapshot.changedInWindowTotal > 5 ? ` (and ${snapshot.changedInWindowTotal - 5} more)` : ''}`,
        ]
      : []),
    ...(warningReasons.length
      ? [
          `Warning events: ${warningReasons
            .slice(0, 5)
            .map((r) => `${r.reason} x${r.occurrences} on ${r.objects} objects`)
            .join(', ')}`,
        ]
      : []),
    ...(logs.totals.errorLines ? [`${logs.totals.errorLines} error lines in the app logs (see the log evidence)`] : []),
  ];
  const rootCause = `${note} Not determined yet. ${signals.length ? `Signals in the window: ${signals.join('. ')}.` : 'No failing pods, Warning events, error lines or configuration changes in the window.'}`;
  const solution = `${note} Not recorded: describe what restored the service (e.g. the runbooks run, such as rollbackDeployment or emergencyScale, and their reports), and when.`;
  const prevention = `${note} ${[
    ...(oom.length ? ['Size memory limits from observed peaks and alert at 85% of the limit.'] : []),
    ...(waiting.length || restarts ? ['Keep readiness/liveness probes and an alert on restarts and CrashLoopBackOff.'] : []),
    ...(changes.length || auditChanges.length
      ? ['Roll out configuration and code changes gradually (canary, readiness gates) with an automatic rollback, and validate ConfigMaps/Secrets in CI.']
      : []),
    'Add an alert for the first signal of this incident (告警规则), and link this report from the runbook that handled it.',
  ].join(' ')}`;
  return { impact, rootCause, solution, prevention };
}

/**
 * 事后分析. What it does: catalog.postIncidentReview.
 * Evidence goes to S3 straight from the activities so the history stays small and holds no log text.
 */
export async function postIncidentReview(raw: PostIncidentReviewInput): Promise<PostIncidentReviewResult> {
  const input = validateInput(catalog.postIncidentReview, raw);
  const { namespace, appDeployment, incidentId } = input;
  const withAudit = patched(auditEvidencePatch);
  const run = await RunbookRun.begin(catalog.postIncidentReview, input, withAudit ? ['app-logs', 'events', 'config-snapshot', 'audit-events'] : ['app-logs', 'events', 'config-snapshot']);
  await read.assertTargetsAllowed({ namespaces: [namespace], names: [{ name: appDeployment, what: 'deployment' }] });

  // The window is fixed once, by the workflow's clock: a retried activity collects the same window.
  const until = new Date();
  const since = new Date(until.getTime() - input.sinceMinutes * 60_000);
  const window = { since: since.toISOString(), until: until.toISOString() };
  // Keys from the run: a retry overwrites the same objects, another run never does.
  const { workflowId, runId } = workflowInfo();
  const folder = `evidence/postIncidentReview/${window.until.slice(0, 10)}/${s3Safe(workflowId)}-${runId}/`;
  const evidence: EvidenceItem[] = [];
  const addEvidence = (item: EvidenceItem) => {
    evidence.push(item);
    run.addEvidence(item);
  };

  const logs = await run.read(
    'app-logs',
    `Logs of every pod of ${namespace}/${appDeployment}, ${window.since} to ${window.until}`,
    () => wait.collectLogsToEvidence({ namespace, deployment: appDeployment, since: window.since, until: window.until, keyPrefix: `${folder}app-logs/` }),
    describeLogs,
  );
  for (const o of logs.objects) {
    addEvidence({
      key: o.key,
      size: o.size,
      sha256: o.sha256,
      what: `app log ${o.pod}/${o.container}${o.previous ? ' (previous instance)' : ''}: ${plural(o.lines, 'line')}, ${plural(o.errorLines, 'error line')}${o.truncated ? ', capped' : ''}`,
    });
  }

  const events = await run.read(
    'events',
    `Events of namespace ${namespace} since ${window.since}`,
    () => wait.collectEventsToEvidence({ namespace, since: window.since, key: `${folder}events.json` }),
    describeEvents,
  );
  addEvidence({ key: events.key, size: events.size, sha256: events.sha256, what: `events of ${namespace}: ${events.total} (${events.warnings} Warning)` });

  const snapshot = await run.read(
    'config-snapshot',
    `Configuration snapshot of ${namespace} (workloads, ConfigMaps, PVCs, Ingress; Secrets by name and key)`,
    () => wait.snapshotConfigToEvidence({ namespace, since: window.since, key: `${folder}config-snapshot.yaml` }),
    describeSnapshot,
  );
  addEvidence({ key: snapshot.key, size: snapshot.size, sha256: snapshot.sha256, what: `configuration snapshot of ${namespace} (${snapshot.secrets} Secrets by name and key only)` });

  const audit = withAudit ? await collectAuditEvidence(run, namespace, window, `${folder}audit-events.jsonl`, addEvidence) : undefined;

  const generated = generatedFindings(input, logs, events, snapshot, audit);
  const parts = ['impact', 'rootCause', 'solution', 'prevention'] as const;
  const findings = Object.fromEntries(parts.map((p) => [p, input[p] ?? generated[p]])) as unknown as IncidentFindings;
  const result = await run.finish(
    `${input.title ? `${input.title}: ` : ''}incident ${incidentId} in ${namespace}, ${input.sinceMinutes} minutes to ${window.until}; ${evidence.length} evidence objects (${logs.objects.length} app logs, events, configuration snapshot${auditSummary(audit)})`,
    findings,
  );
  return {
    ...result,
    incidentId,
    ...(input.title ? { title: input.title } : {}),
    window,
    evidence,
    logs: {
      found: logs.found,
      pods: logs.pods.length,
      podsOmitted: logs.podsOmitted,
      objects: logs.objects.length,
      lines: logs.totals.lines,
      bytes: logs.totals.bytes,
      errorLines: logs.totals.errorLines,
      failures: logs.failures.length,
      truncated: logs.objects.filter((o) => o.truncated).length,
    },
    events: { total: events.total, warnings: events.warnings },
    snapshot: { counts: snapshot.counts, secrets: snapshot.secrets, unavailable: snapshot.unavailable.map((u) => u.kind), changedInWindow: snapshot.changedInWindowTotal },
    generated: parts.filter((p) => input[p] === undefined),
    ...(audit ? { audit: auditOfResult(audit) } : {}),
  };
}
