import type { AuditChange, CollectAuditResult } from '../activities/audit-evidence';
import { changesToName } from '../common/audit-changes';
import { wait } from './activity-proxies';
import type { RunbookRun } from './kernel/runbook-run';

export { changesToName };

/**
 * postIncidentReview's API audit evidence (审计日志): the namespace's audit events of the window to
 * S3, and the changes people made into the run's timeline at the time they happened.
 */

/** Runs begun before the API audit evidence collect logs, events and the snapshot only. */
export const auditEvidencePatch = 'post-incident-audit-evidence';

/** Changes by people (and other non-system users) from the audit log that enter the timeline (common/audit-changes.ts picks them). */
const auditChangesInTimeline = 10;

/** The audit part of the review's result: whether a source is configured, why it could not be read, counts, the changes named (at most 20). */
export interface AuditOfReview {
  configured: boolean;
  unavailable?: string;
  events: number;
  truncated: boolean;
  changesTotal: number;
  systemChanges: number;
  changes: AuditChange[];
}

const kib = (bytes: number) => (bytes >= 1_048_576 ? `${(bytes / 1_048_576).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);
const short = (sha256: string) => sha256.slice(0, 12);
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

const pastTense: Record<string, string> = { create: 'created', update: 'updated', patch: 'patched', delete: 'deleted', deletecollection: 'deleted all' };

/** "alice patched deployments.apps/short-drama-app": what the timeline's step column and the report's sentences say. */
function auditChangeTitle(c: AuditChange): string {
  return `${pastTense[c.verb] ?? c.verb} ${c.resource}${c.name ? `/${c.name}` : ''}${c.subresource ? ` (${c.subresource})` : ''}`;
}

function auditChangeDetail(c: AuditChange): string {
  return [c.rollout ? `rollout: new ReplicaSet ${c.rollout}` : undefined, c.via ? `impersonated by ${c.via}` : undefined, c.userAgent].filter(Boolean).join(', ');
}

/** "2026-12-07T18:01:02Z alice patched deployments.apps/short-drama-app (rollout: …)". */
export function auditChangeLine(c: AuditChange): string {
  const detail = auditChangeDetail(c);
  return `${c.at.replace(/\.\d{3}Z$/, 'Z')} ${c.user} ${auditChangeTitle(c)}${detail ? ` (${detail})` : ''}`;
}

function describeAudit(a: CollectAuditResult): string {
  if (!a.configured) return 'API audit evidence not configured (KUBERNETES_AUDIT_LOG): no audit events collected';
  if (a.unavailable) return `API audit log not readable: ${a.unavailable}`;
  const people = changesToName(a.changes, 3)
    .map((c) => `${c.user} ${auditChangeTitle(c)}${c.rollout ? ' (rollout)' : ''}`)
    .join('; ');
  return `${a.events} audit events from ${plural(a.files, 'file')}: ${plural(a.changesTotal, 'change')} by people or other users${people ? ` (${people})` : ''}, ${a.systemChanges} by system users, ${a.reads} reads${
    a.truncated ? '; capped' : ''
  }${a.failedWrites ? `; ${plural(a.failedWrites, 'refused write')}` : ''}${a.secretBodiesDropped ? `; ${a.secretBodiesDropped} Secret bodies dropped` : ''}${a.evidence ? ` -> ${a.evidence.key} (${kib(a.evidence.size)}, sha256 ${short(a.evidence.sha256)})` : ''}`;
}

/**
 * The read step: the events to S3 (an evidence item when written), and the changes named entered
 * in the timeline at the time they happened, so a rollout before the incident stands first.
 */
export async function collectAuditEvidence(
  run: RunbookRun<'app-logs' | 'events' | 'config-snapshot' | 'audit-events'>,
  namespace: string,
  window: { since: string; until: string },
  key: string,
  addEvidence: (item: { key: string; size: number; sha256: string; what: string }) => void,
): Promise<CollectAuditResult> {
  const audit = await run.read(
    'audit-events',
    `API audit events of namespace ${namespace}, ${window.since} to ${window.until} (who changed which object)`,
    () => wait.collectAuditEventsToEvidence({ namespace, since: window.since, until: window.until, key }),
    describeAudit,
  );
  if (audit.evidence) {
    addEvidence({
      ...audit.evidence,
      what: `API audit events of ${namespace}: ${audit.events}${audit.truncated ? ' (capped)' : ''}, ${plural(audit.changesTotal, 'change')} by people or other users (Secrets: metadata only)`,
    });
  }
  run.recordFound(
    'audit-events',
    changesToName(audit.changes, auditChangesInTimeline).map((c) => ({ at: c.at, by: c.user, title: auditChangeTitle(c), detail: auditChangeDetail(c) || undefined })),
  );
  return audit;
}

/** The run summary's words on the audit evidence. */
export function auditSummary(audit: CollectAuditResult | undefined): string {
  if (!audit) return '';
  if (!audit.configured) return '; API audit evidence not configured';
  if (audit.unavailable) return '; API audit log not readable';
  return `, API audit events: ${plural(audit.changesTotal, 'change')} by people or other users`;
}

export function auditOfResult(audit: CollectAuditResult): AuditOfReview {
  return {
    configured: audit.configured,
    ...(audit.unavailable ? { unavailable: audit.unavailable } : {}),
    events: audit.events,
    truncated: audit.truncated,
    changesTotal: audit.changesTotal,
    systemChanges: audit.systemChanges,
    changes: audit.changes,
  };
}
