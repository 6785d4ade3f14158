import { createReadStream, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { Context } from '@temporalio/activity';
import { changesToName } from '../common/audit-changes';
import { scrubForEvidence } from '../common/evidence-scrub';
import { throwIfCancelled } from './cancellation';
import { failure, invalidInput } from './errors';
import { assertNamespaceAllowed } from './guards';
import type { EvidenceObject } from './incident-evidence';
import { validateInt } from './input-checks';
import type { PutEvidenceInput, PutEvidenceResult } from './s3';

/**
 * 事后分析's API audit evidence (审计日志): the kube-apiserver's audit events of one namespace in
 * the incident's window, read from the audit log it writes (deploy/kubernetes/audit-policy.yaml:
 * the manual's policy, then workloads), and written to S3 as JSON lines. The workflow gets back
 * counts and the changes people (and other non-system users) made, never a request body.
 */
export interface AuditEvidenceDeps {
  /** The apiserver's --audit-log-path as the worker sees it (KUBERNETES_AUDIT_LOG); absent: not configured. */
  auditLogPath?: string;
  allowedNamespaces: string[];
  /** Present when S3 is configured: the evidence prefix and the S3 activities' putEvidence. */
  evidence?: { evidencePrefix: string; putEvidence: (input: PutEvidenceInput) => Promise<PutEvidenceResult> };
}

export interface CollectAuditInput {
  namespace: string;
  /** The window (ISO): events whose stageTimestamp is in [since, until]. */
  since: string;
  until: string;
  /** Relative to the evidence prefix: the JSON lines object. */
  key: string;
  /** Cap of the S3 object (default 64 MiB, at most 256 MiB); the oldest events of the window are kept. */
  maxBytes?: number;
}

/** One write to the API by someone, as the timeline shows it. */
export interface AuditChange {
  /** The event's stageTimestamp (ISO, ms). */
  at: string;
  /** Who: the impersonated user when there is one, else the authenticated one. */
  user: string;
  /** The authenticated user when `user` was impersonated. */
  via?: string;
  /** create, update, patch, delete, deletecollection. */
  verb: string;
  /** resource.group (deployments.apps) or the core resource (secrets). */
  resource: string;
  name?: string;
  subresource?: string;
  /** For a Deployment: the ReplicaSet its controller created for this change (a rollout). */
  rollout?: string;
  /** The client (kubectl/v1.37.1, …), cut short. */
  userAgent?: string;
}

export interface CollectAuditResult {
  /** False: no audit log is configured (KUBERNETES_AUDIT_LOG); nothing else was done. */
  configured: boolean;
  /** The configured path. */
  source?: string;
  /** Why the log could not be read (it does not exist, …): the rest is then empty. */
  unavailable?: string;
  since: string;
  until: string;
  /** The JSON lines object in S3 (absent when not configured or unavailable). */
  evidence?: EvidenceObject;
  /** Audit log files read (rotated ones older than the window are skipped). */
  files: number;
  linesRead: number;
  /** Lines that were not JSON (a torn last line while the apiserver writes). */
  unreadableLines: number;
  /** Events of the namespace in the window (stage ResponseComplete) written to S3. */
  events: number;
  /** The cap was reached: the newest events of the window are missing from the S3 object (all are counted). */
  truncated: boolean;
  /** Writes (create, update, patch, delete) that succeeded, by users whose name does not start with system:; status writes left out. */
  changesTotal: number;
  /** At most 20 of those, oldest first: rollouts, then other changes to workloads and configuration, then pods (common/audit-changes.ts). */
  changes: AuditChange[];
  /** Writes the API refused (HTTP 400 and above): counted only, they changed nothing. */
  failedWrites: number;
  /** Writes by system:* users (controllers, service accounts such as the worker's): counted only. */
  systemChanges: number;
  /** Reads (get, list, watch) of the namespace's objects: counted only. */
  reads: number;
  /** Per user: events and writes, non-system users first, at most 10. */
  users: Array<{ user: string; system: boolean; events: number; changes: number }>;
  /** Events that carried a Secret's request or response body (a policy above Metadata): bodies dropped. */
  secretBodiesDropped: number;
}

interface AuditEvent {
  auditID?: string;
  stage?: string;
  verb?: string;
  user?: { username?: string };
  impersonatedUser?: { username?: string };
  userAgent?: string;
  objectRef?: { resource?: string; namespace?: string; name?: string; apiGroup?: string; subresource?: string };
  responseStatus?: { code?: number };
  requestObject?: unknown;
  responseObject?: unknown;
  stageTimestamp?: string;
}

const writeVerbs = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
const readVerbs = new Set(['get', 'list', 'watch']);
const maxChanges = 20;
/** A Deployment controller's new ReplicaSet this soon after a change of its Deployment counts as that change's rollout. */
const rolloutWithinMs = 60_000;

function isoTime(value: unknown, what: string): number {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw invalidInput(`${what}: expected an ISO time, got "${String(value)}"`);
  return ms;
}

function relativeKey(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 512 || value.endsWith('/')) throw invalidInput('key: expected an object key relative to the evidence prefix');
  if (!/^[A-Za-z0-9._\-/]+$/.test(value) || value.startsWith('/') || value.split('/').some((p) => p === '.' || p === '..')) {
    throw invalidInput(`key "${value}": only letters, digits, ".", "_", "-" and "/", no "." or ".." segments`);
  }
  return value;
}

/** The log and its rotated backups (`audit-2026-12-07T18-01-02.123.log`, as the apiserver names them), oldest first; .gz ones are not read. */
async function auditFiles(path: string, sinceMs: number): Promise<Array<{ path: string; stats: Stats }>> {
  const dir = dirname(path);
  const ext = extname(path);
  const base = basename(path, ext);
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const rotated = new RegExp(`^${escape(base)}-\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}\\.\\d{3}${escape(ext)}$`);
  const backups = (await readdir(dir)).filter((name) => rotated.test(name)).sort();
  const files: Array<{ path: string; stats: Stats }> = [];
  for (const name of backups) {
    const stats = await stat(join(dir, name)).catch(() => undefined);
    // Last written before the window began: every event in it is older.
    if (stats && stats.mtimeMs >= sinceMs) files.push({ path: join(dir, name), stats });
  }
  files.push({ path, stats: await stat(path) });
  return files;
}

/** `deployments.apps`, or `secrets` for the core group. */
function resourceOf(ref: NonNullable<AuditEvent['objectRef']>): string {
  return `${ref.resource ?? '?'}${ref.apiGroup ? `.${ref.apiGroup}` : ''}`;
}

const isSystem = (user: string) => user.startsWith('system:');

export function createAuditEvidenceActivities({ auditLogPath, allowedNamespaces, evidence }: AuditEvidenceDeps) {
  return {
    /**
     * The namespace's API audit events of a window (stage ResponseComplete) from the configured
     * audit log, streamed (it can be large), to S3 as JSON lines; who changed which object in the
     * result. Secret bodies never leave: the policy logs Secrets at Metadata, and a body there
     * anyway (another policy) is dropped here. Pod bodies (RequestResponse) are scrubbed as every
     * evidence is (literal env values, credential URLs).
     */
    async collectAuditEventsToEvidence(input: CollectAuditInput): Promise<CollectAuditResult> {
      const namespace = input?.namespace;
      if (typeof namespace !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) throw invalidInput(`namespace "${String(namespace)}": expected a Kubernetes namespace name`);
      assertNamespaceAllowed(namespace, { namespaces: allowedNamespaces });
      const sinceMs = isoTime(input.since, 'since');
      const untilMs = isoTime(input.until, 'until');
      if (untilMs < sinceMs || untilMs - sinceMs > 7 * 86_400_000) throw invalidInput('until must be after since, at most 7 days later');
      const key = relativeKey(input.key);
      const maxBytes = validateInt(input.maxBytes, 'maxBytes', 1024, 256 * 1_048_576, 64 * 1_048_576);
      const result: CollectAuditResult = {
        configured: auditLogPath !== undefined,
        since: new Date(sinceMs).toISOString(),
        until: new Date(untilMs).toISOString(),
        files: 0,
        linesRead: 0,
        unreadableLines: 0,
        events: 0,
        truncated: false,
        changesTotal: 0,
        changes: [],
        failedWrites: 0,
        systemChanges: 0,
        reads: 0,
        users: [],
        secretBodiesDropped: 0,
      };
      if (auditLogPath === undefined) return result;
      result.source = auditLogPath;
      if (!evidence) throw failure('InvalidInput', 'cannot write audit evidence: S3 is not configured (S3_BUCKET)');

      let files: Array<{ path: string; stats: Stats }>;
      try {
        files = await auditFiles(auditLogPath, sinceMs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        result.unavailable =
          code === 'ENOENT' ? `${auditLogPath} does not exist (is the apiserver's --audit-log-path this file, and is it mounted here?)` : `${auditLogPath}: ${(err as Error).message}`;
        return result;
      }

      const ctx = Context.current();
      const progress = () => ({ files: result.files, lines: result.linesRead, events: result.events });
      const beat = setInterval(() => ctx.heartbeat(progress()), 5000);
      ctx.heartbeat(progress());
      // A quick test before JSON.parse: most lines of a busy log are other namespaces'.
      const namespaceField = `"namespace":${JSON.stringify(namespace)}`;
      const kept: Array<{ at: number; event: AuditEvent }> = [];
      try {
        for (const file of files) {
          result.files++;
          if (file.stats.size === 0) continue;
          // Only what the file held when the read began: the apiserver goes on appending.
          const lines = createInterface({ input: createReadStream(file.path, { encoding: 'utf8', end: Math.max(0, file.stats.size - 1) }), crlfDelay: Infinity });
          for await (const line of lines) {
            result.linesRead++;
            if (result.linesRead % 10_000 === 0) throwIfCancelled(ctx);
            if (!line.includes(namespaceField) || !line.includes('"ResponseComplete"')) continue;
            let event: AuditEvent;
            try {
              event = JSON.parse(line) as AuditEvent;
            } catch {
              result.unreadableLines++;
              continue;
            }
            if (event.stage !== 'ResponseComplete' || event.objectRef?.namespace !== namespace) continue;
            const at = Date.parse(event.stageTimestamp ?? '');
            if (!Number.isFinite(at) || at < sinceMs || at > untilMs) continue;
            kept.push({ at, event });
          }
        }
        throwIfCancelled(ctx);
        kept.sort((a, b) => a.at - b.at);

        const users = new Map<string, { user: string; system: boolean; events: number; changes: number }>();
        const changes: AuditChange[] = [];
        const replicaSetsCreated: Array<{ at: number; name: string }> = [];
        const parts: string[] = [];
        let bytes = 0;
        for (const { at, event } of kept) {
          const ref = event.objectRef!;
          if (ref.resource === 'secrets' && (event.requestObject !== undefined || event.responseObject !== undefined)) {
            delete event.requestObject;
            delete event.responseObject;
            result.secretBodiesDropped++;
          }
          const line = `${JSON.stringify(scrubForEvidence(event))}\n`;
          const size = Buffer.byteLength(line, 'utf8');
          if (bytes + size <= maxBytes && !result.truncated) {
            parts.push(line);
            bytes += size;
          } else result.truncated = true;
          result.events++;

          const authenticated = event.user?.username ?? '?';
          const user = event.impersonatedUser?.username ?? authenticated;
          const system = isSystem(user);
          const entry = users.get(user) ?? { user, system, events: 0, changes: 0 };
          entry.events++;
          users.set(user, entry);
          const verb = event.verb ?? '';
          if (readVerbs.has(verb)) result.reads++;
          if (!writeVerbs.has(verb)) continue;
          const code = event.responseStatus?.code;
          const succeeded = code === undefined || code < 400;
          if (succeeded && verb === 'create' && ref.resource === 'replicasets' && ref.apiGroup === 'apps' && ref.name) replicaSetsCreated.push({ at, name: ref.name });
          // Status writes are controllers' (and kwok's) bookkeeping, never a person's change.
          if (ref.subresource === 'status') continue;
          if (!succeeded) {
            result.failedWrites++;
            continue;
          }
          entry.changes++;
          if (system) {
            result.systemChanges++;
            continue;
          }
          result.changesTotal++;
          changes.push({
            at: new Date(at).toISOString(),
            user,
            ...(event.impersonatedUser?.username ? { via: authenticated } : {}),
            verb,
            resource: resourceOf(ref),
            ...(ref.name ? { name: ref.name } : {}),
            ...(ref.subresource ? { subresource: ref.subresource } : {}),
            ...(event.userAgent ? { userAgent: event.userAgent.split(' ')[0]!.slice(0, 60) } : {}),
          });
        }
        // A Deployment's change followed by its controller's new ReplicaSet (named <deployment>-<hash>) was a rollout.
        for (const change of changes) {
          if (change.resource !== 'deployments.apps' || !change.name || change.subresource || !(change.verb === 'patch' || change.verb === 'update')) continue;
          const at = Date.parse(change.at);
          const created = replicaSetsCreated.find(
            (rs) => rs.at >= at && rs.at - at <= rolloutWithinMs && rs.name.startsWith(`${change.name}-`) && /^[a-z0-9]+$/.test(rs.name.slice(change.name!.length + 1)),
          );
          if (created) change.rollout = created.name;
        }
        result.changes = changesToName(changes, maxChanges);
        result.users = [...users.values()].sort((a, b) => Number(a.system) - Number(b.system) || b.changes - a.changes || b.events - a.events || a.user.localeCompare(b.user)).slice(0, 10);

        // Overwrite: a retried attempt reads again and replaces what the failed one wrote.
        const written = await evidence.putEvidence({ key: `${evidence.evidencePrefix}${key}`, body: parts.join(''), contentType: 'application/x-ndjson', overwrite: true });
        result.evidence = { key: written.key, size: written.size, sha256: written.sha256 };
        return result;
      } finally {
        clearInterval(beat);
      }
    },
  };
}

export type AuditEvidenceActivities = ReturnType<typeof createAuditEvidenceActivities>;
