import {
  BatchV1Api,
  type KubeConfig,
  type V1ConfigMap,
  type V1Deployment,
  type V1Ingress,
  type V1ObjectMeta,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1Secret,
  type V1Service,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { stringify as toYaml } from 'yaml';
import { failure, invalidInput } from './errors';
import { namespaceSnapshotOf } from './kubernetes-config';
import { scrubForEvidence } from '../common/evidence-scrub';
import { guarded, kcall, labelSelectorText, readOptional, readPodLog, throwIfCancelled, wire, type KubeClients } from './kubernetes-common';
import { defaultPageSize, forEachListPage, type ListPage } from './kubernetes-paging';
import { podSummary } from './kubernetes-pods';
import type { PutEvidenceInput, PutEvidenceResult } from './s3';
import { validateInt } from './input-checks';

/**
 * 事后分析's evidence: each activity reads from Kubernetes and writes to S3 in one go, so logs,
 * events and the configuration snapshot never pass through workflow history; the workflow gets
 * back only keys, sizes, sha256 digests and counts. Keys come from the workflow (its id and run
 * id), and objects are overwritten, so a retried attempt replaces what a failed one left.
 */
export interface IncidentEvidenceDeps {
  kube?: KubeConfig;
  allowedNamespaces: string[];
  /**
   * Present when S3 is configured: the evidence prefix and the S3 activities' putEvidence, which
   * does the writing (allowlist, multipart, sha256 in metadata).
   */
  evidence?: { evidencePrefix: string; putEvidence: (input: PutEvidenceInput) => Promise<PutEvidenceResult> };
}

/** One object written: what the report's evidence list and the history hold. */
export interface EvidenceObject {
  key: string;
  size: number;
  sha256: string;
}

export interface CollectLogsInput {
  namespace: string;
  deployment: string;
  /** The window (ISO): lines whose kubelet timestamp is in [since, until] are kept. */
  since: string;
  until: string;
  /** Relative to the evidence prefix, ending in "/"; each container's log goes to `<keyPrefix><pod>/<container>[.previous].log`. */
  keyPrefix: string;
  /** Cap per container log (default 16 MiB, at most 64 MiB); the oldest bytes of the window are kept. */
  maxBytesPerContainer?: number;
  /** Pods read at most (default 200); the rest are counted as omitted. */
  maxPods?: number;
}

export interface LogObject extends EvidenceObject {
  pod: string;
  container: string;
  /** The container instance before its last restart (read when it restarted). */
  previous: boolean;
  lines: number;
  /** Lines with ERROR, FATAL, panic, Traceback and the like: a count, never the text. */
  errorLines: number;
  /** The cap was reached: the newest lines of the window are missing. */
  truncated: boolean;
}

export interface CollectLogsResult {
  namespace: string;
  deployment: string;
  /** False when the Deployment does not exist (then nothing else was read). */
  found: boolean;
  selector?: string;
  since: string;
  until: string;
  pods: Array<{ name: string; phase: string; ready: boolean; restarts: number; waitingReason?: string; lastTerminationReason?: string }>;
  podsOmitted: number;
  objects: LogObject[];
  /** Containers whose log could not be read (e.g. never started), with the API's reason. */
  failures: Array<{ pod: string; container: string; previous: boolean; error: string }>;
  totals: { lines: number; bytes: number; errorLines: number };
}

export interface CollectEventsInput {
  namespace: string;
  /** Events last seen at or after this time (ISO). */
  since: string;
  /** Relative to the evidence prefix. */
  key: string;
}

export interface CollectEventsResult extends EvidenceObject {
  total: number;
  warnings: number;
  /** The most frequent reasons (occurrences summed), at most 10. */
  reasons: Array<{ type: string; reason: string; occurrences: number; objects: number }>;
  first?: string;
  last?: string;
}

export interface SnapshotConfigInput {
  namespace: string;
  /** Start of the incident window (ISO): objects changed since then are listed in the result. */
  since: string;
  /** Relative to the evidence prefix. */
  key: string;
}

export interface SnapshotConfigResult extends EvidenceObject {
  /** Objects per kind in the snapshot. */
  counts: Record<string, number>;
  /** Names and keys of the Secrets (their count here; names and keys in the object). */
  secrets: number;
  /** Kinds that could not be listed (e.g. RBAC), with the reason; the rest of the snapshot stands. */
  unavailable: Array<{ kind: string; error: string }>;
  /** Objects whose spec or metadata changed in the window (newest first, at most 20), by field manager. */
  changedInWindow: Array<{ kind: string; name: string; at: string; manager?: string; operation?: string }>;
  changedInWindowTotal: number;
}

const errorLine = /\b(ERROR|FATAL|CRITICAL|panic|Traceback|Exception|Unhandled)\b/;
const dayMs = 86_400_000;

function isoTime(value: unknown, what: string): number {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw invalidInput(`${what}: expected an ISO time, got "${String(value)}"`);
  return ms;
}

function relativeKey(value: unknown, what: string, folder: boolean): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 512) throw invalidInput(`${what}: expected a key relative to the evidence prefix`);
  if (folder !== value.endsWith('/')) throw invalidInput(`${what} "${value}": ${folder ? 'expected a folder ending in "/"' : 'expected an object key, not a folder'}`);
  if (!/^[A-Za-z0-9._\-/]+$/.test(value) || value.startsWith('/') || value.split('/').some((p) => p === '.' || p === '..')) {
    throw invalidInput(`${what} "${value}": only letters, digits, ".", "_", "-" and "/", no "." or ".." segments`);
  }
  return value;
}

/** A short reason from an API error, without the stack: kept in the result for the report. */
function reasonOf(err: unknown): string {
  const text = err instanceof ApplicationFailure || err instanceof Error ? err.message : String(err);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * Keeps the lines of a `timestamps=true` log whose RFC 3339 stamp is inside the window. A line
 * without a readable stamp follows the line before it (a wrapped line belongs to its entry).
 */
export function linesInWindow(text: string, sinceMs: number, untilMs: number): { text: string; lines: number; errorLines: number } {
  const kept: string[] = [];
  let keep = false;
  let errorLines = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const space = line.indexOf(' ');
    const at = space > 0 ? Date.parse(line.slice(0, space)) : NaN;
    if (Number.isFinite(at)) keep = at >= sinceMs && at <= untilMs;
    if (!keep) continue;
    kept.push(line);
    if (errorLine.test(line)) errorLines++;
  }
  return { text: kept.length ? `${kept.join('\n')}\n` : '', lines: kept.length, errorLines };
}

/** Every item of a paged LIST (500 per page). */
async function listAll<T>(resource: string, namespace: string, listPage: (continueToken: string | undefined, limit: number) => Promise<ListPage<T>>): Promise<T[]> {
  const items: T[] = [];
  await forEachListPage(resource, namespace, defaultPageSize, listPage, (page) => items.push(...page));
  return items;
}

/**
 * The newest change to an object's spec or metadata: its creation, or a field manager's write
 * other than to status. For ReplicaSets only the creation (a rollout); later writes are the
 * Deployment controller scaling them.
 */
function lastChange(meta: V1ObjectMeta | undefined, creationOnly: boolean): { at: number; manager?: string; operation?: string } | undefined {
  let best: { at: number; manager?: string; operation?: string } | undefined;
  const created = meta?.creationTimestamp ? new Date(meta.creationTimestamp as unknown as string).getTime() : NaN;
  if (Number.isFinite(created)) best = { at: created, operation: 'Create' };
  if (creationOnly) return best;
  for (const f of meta?.managedFields ?? []) {
    if (f.subresource) continue; // status and scale writes are the controllers' bookkeeping
    const at = f.time ? new Date(f.time as unknown as string).getTime() : NaN;
    if (Number.isFinite(at) && (!best || at >= best.at)) best = { at, ...(f.manager ? { manager: f.manager } : {}), ...(f.operation ? { operation: f.operation } : {}) };
  }
  return best;
}

/** The wire form of an object for evidence, without managedFields (noise, and large). */
function wireWithoutManagedFields(item: unknown, type: string): Record<string, unknown> {
  const w = wire(item, type) as Record<string, unknown> & { metadata?: Record<string, unknown> };
  if (w.metadata) delete w.metadata.managedFields;
  return w;
}

/** An object of the snapshot: its wire form (without managedFields) with apiVersion and kind. */
function snapshotItem(item: unknown, type: string, apiVersion: string, kind: string): Record<string, unknown> {
  return { apiVersion, kind, ...wireWithoutManagedFields(item, type) };
}

export function createIncidentEvidenceActivities({ kube, allowedNamespaces, evidence }: IncidentEvidenceDeps) {
  const scope = { kube, allowedNamespaces };

  async function put(key: string, body: string, contentType: string): Promise<PutEvidenceResult> {
    if (!evidence) throw failure('InvalidInput', 'cannot write evidence: S3 is not configured (S3_BUCKET)');
    // Overwrite: a retried attempt reads a moment later and replaces what the failed one wrote.
    return evidence.putEvidence({ key: `${evidence.evidencePrefix}${key}`, body, contentType, overwrite: true });
  }

  /** Heartbeats every 5 s while `body` runs (big logs take a while), and stops on cancellation. */
  async function heartbeating<T>(progress: () => unknown, body: (ctx: Context) => Promise<T>): Promise<T> {
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat(progress()), 5000);
    try {
      ctx.heartbeat(progress());
      return await body(ctx);
    } finally {
      clearInterval(beat);
    }
  }

  return {
    /**
     * The logs of every pod of a Deployment (every container; the previous instance too when it
     * restarted) within a time window, one S3 object per container log. As `kubectl logs
     * --since --timestamps`, but for all pods, and straight to S3.
     */
    async collectLogsToEvidence(input: CollectLogsInput): Promise<CollectLogsResult> {
      const { namespace, deployment } = input;
      const c = guarded(scope, namespace, { deployment });
      const sinceMs = isoTime(input.since, 'since');
      const untilMs = isoTime(input.until, 'until');
      if (untilMs < sinceMs || untilMs - sinceMs > 7 * dayMs) throw invalidInput('until must be after since, at most 7 days later');
      const keyPrefix = relativeKey(input.keyPrefix, 'keyPrefix', true);
      const maxBytes = validateInt(input.maxBytesPerContainer, 'maxBytesPerContainer', 1024, 64 * 1_048_576, 16 * 1_048_576);
      const maxPods = validateInt(input.maxPods, 'maxPods', 1, 1000, 200);
      const result: CollectLogsResult = {
        namespace,
        deployment,
        found: false,
        since: new Date(sinceMs).toISOString(),
        until: new Date(untilMs).toISOString(),
        pods: [],
        podsOmitted: 0,
        objects: [],
        failures: [],
        totals: { lines: 0, bytes: 0, errorLines: 0 },
      };
      const d = await readOptional('get', `deployments.apps/${deployment}`, namespace, () => c.apps.readNamespacedDeployment(deployment, namespace));
      if (!d) return result;
      result.found = true;
      const selector = labelSelectorText(d.spec?.selector);
      if (!selector) throw failure('InvalidInput', `deployments.apps/${deployment} has an empty selector: it would match every pod of ${namespace}`);
      result.selector = selector;
      const pods = (await listAll<V1Pod>('pods', namespace, (token, limit) => c.core.listNamespacedPod(namespace, undefined, undefined, token, undefined, selector, limit))).sort((a, b) =>
        (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
      );
      result.podsOmitted = Math.max(0, pods.length - maxPods);
      const chosen = pods.slice(0, maxPods);
      result.pods = chosen.map((p) => {
        const s = podSummary(p);
        return {
          name: s.name,
          phase: s.phase,
          ready: s.ready,
          restarts: s.restarts,
          ...(s.waitingReason ? { waitingReason: s.waitingReason } : {}),
          ...(s.lastTerminationReason ? { lastTerminationReason: s.lastTerminationReason } : {}),
        };
      });
      return heartbeating(
        () => ({ objects: result.objects.length, failures: result.failures.length, pods: chosen.length }),
        async (ctx) => {
          for (const pod of chosen) {
            const podName = pod.metadata?.name ?? '';
            const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
            const containers = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((x) => x.name);
            for (const container of containers) {
              const restarted = (statuses.find((s) => s.name === container)?.restartCount ?? 0) > 0;
              for (const previous of restarted ? [true, false] : [false]) {
                throwIfCancelled(ctx);
                // The server counts sinceSeconds back from now; the window's own bounds are applied to each line's timestamp.
                const sinceSeconds = Math.max(1, Math.ceil((Date.now() - sinceMs) / 1000) + 1);
                let body: string;
                try {
                  const action = `get logs of pods/${podName} container ${container}${previous ? ' (previous)' : ''}`;
                  // No fallback for a removed previous instance: the current read below holds the newest ended one.
                  body = await readPodLog(
                    action,
                    (previous) =>
                      kcall(action, 'pods/log', namespace, () =>
                        c.core.readNamespacedPodLog(podName, namespace, container, false, undefined, maxBytes, undefined, previous, sinceSeconds, undefined, true),
                      ),
                    { previous },
                  );
                } catch (err) {
                  if (err instanceof ApplicationFailure && (err.type === 'Transient' || err.type === 'Unclassified' || err.type === 'Forbidden')) throw err;
                  result.failures.push({ pod: podName, container, previous, error: reasonOf(err) });
                  continue;
                }
                // limitBytes keeps the oldest bytes (the start of the window); a server that ignores it is capped here.
                const bytes = Buffer.from(body, 'utf8');
                const truncated = bytes.length >= maxBytes;
                const capped = bytes.length > maxBytes ? bytes.subarray(0, maxBytes).toString('utf8') : body;
                // A capped body may end in the middle of a line: that partial line is dropped.
                const whole = truncated ? capped.slice(0, capped.lastIndexOf('\n') + 1) : body;
                const window = linesInWindow(whole, sinceMs, untilMs);
                const key = `${keyPrefix}${podName}/${container}${previous ? '.previous' : ''}.log`;
                const written = await put(key, window.text, 'text/plain; charset=utf-8');
                result.objects.push({ key: written.key, size: written.size, sha256: written.sha256, pod: podName, container, previous, lines: window.lines, errorLines: window.errorLines, truncated });
                result.totals.lines += window.lines;
                result.totals.bytes += written.size;
                result.totals.errorLines += window.errorLines;
              }
            }
          }
          return result;
        },
      );
    },

    /** The namespace's events last seen since a time, oldest first, as JSON (`kubectl get events --sort-by=.lastTimestamp`). */
    async collectEventsToEvidence(input: CollectEventsInput): Promise<CollectEventsResult> {
      const { namespace } = input;
      const c = guarded(scope, namespace);
      const sinceMs = isoTime(input.since, 'since');
      const key = relativeKey(input.key, 'key', false);
      const all = await heartbeating(
        () => ({ events: namespace }),
        () => listAll('events', namespace, (token, limit) => c.core.listNamespacedEvent(namespace, undefined, undefined, token, undefined, undefined, limit)),
      );
      const timeOf = (e: (typeof all)[number]) => {
        const t = e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
        const ms = t ? new Date(t as unknown as string).getTime() : NaN;
        return Number.isFinite(ms) ? ms : undefined;
      };
      const inWindow = all
        .map((e) => ({ e, at: timeOf(e) }))
        .filter((x): x is { e: (typeof all)[number]; at: number } => x.at !== undefined && x.at >= sinceMs)
        .sort((a, b) => a.at - b.at || (a.e.metadata?.name ?? '').localeCompare(b.e.metadata?.name ?? ''));
      const events = inWindow.map(({ e, at }) => ({ lastSeen: new Date(at).toISOString(), ...wireWithoutManagedFields(e, 'CoreV1Event') }));
      const document = { namespace, since: new Date(sinceMs).toISOString(), takenAt: new Date().toISOString(), total: events.length, events };
      const body = `${JSON.stringify(scrubForEvidence(document), null, 2)}\n`;
      const written = await put(key, body, 'application/json');
      const reasons = new Map<string, { type: string; reason: string; occurrences: number; objects: Set<string> }>();
      for (const { e } of inWindow) {
        const type = e.type ?? 'Normal';
        const reason = e.reason ?? '';
        const entry = reasons.get(`${type}/${reason}`) ?? { type, reason, occurrences: 0, objects: new Set<string>() };
        entry.occurrences += e.count ?? e.series?.count ?? 1;
        entry.objects.add(`${e.involvedObject.kind ?? ''}/${e.involvedObject.name ?? ''}`);
        reasons.set(`${type}/${reason}`, entry);
      }
      const top = [...reasons.values()]
        .sort((a, b) => (a.type === b.type ? 0 : a.type === 'Warning' ? -1 : b.type === 'Warning' ? 1 : 0) || b.occurrences - a.occurrences || a.reason.localeCompare(b.reason))
        .slice(0, 10)
        .map(({ objects, ...r }) => ({ ...r, objects: objects.size }));
      return {
        key: written.key,
        size: written.size,
        sha256: written.sha256,
        total: events.length,
        warnings: inWindow.filter(({ e }) => e.type === 'Warning').length,
        reasons: top,
        ...(inWindow.length ? { first: new Date(inWindow[0]!.at).toISOString(), last: new Date(inWindow[inWindow.length - 1]!.at).toISOString() } : {}),
      };
    },

    /**
     * The namespace's configuration as YAML (`kubectl get all,configmap,secret,pvc,ingress -o yaml`):
     * every workload, Service, HPA, ConfigMap, PVC and Ingress in full (managedFields left out), and
     * the Secrets as snapshotNamespaceConfig gives them: names, types and keys, never values.
     */
    async snapshotConfigToEvidence(input: SnapshotConfigInput): Promise<SnapshotConfigResult> {
      const { namespace } = input;
      const c = guarded(scope, namespace);
      const sinceMs = isoTime(input.since, 'since');
      const key = relativeKey(input.key, 'key', false);
      const batch = c.kube.makeApiClient(BatchV1Api);
      const kinds: Array<{ kind: string; apiVersion: string; type: string; resource: string; list: (c: KubeClients, token: string | undefined, limit: number) => Promise<ListPage<unknown>> }> = [
        {
          kind: 'Deployment',
          apiVersion: 'apps/v1',
          type: 'V1Deployment',
          resource: 'deployments.apps',
          list: (k, t, n) => k.apps.listNamespacedDeployment(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        {
          kind: 'StatefulSet',
          apiVersion: 'apps/v1',
          type: 'V1StatefulSet',
          resource: 'statefulsets.apps',
          list: (k, t, n) => k.apps.listNamespacedStatefulSet(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        {
          kind: 'DaemonSet',
          apiVersion: 'apps/v1',
          type: 'V1DaemonSet',
          resource: 'daemonsets.apps',
          list: (k, t, n) => k.apps.listNamespacedDaemonSet(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        {
          kind: 'ReplicaSet',
          apiVersion: 'apps/v1',
          type: 'V1ReplicaSet',
          resource: 'replicasets.apps',
          list: (k, t, n) => k.apps.listNamespacedReplicaSet(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        { kind: 'Pod', apiVersion: 'v1', type: 'V1Pod', resource: 'pods', list: (k, t, n) => k.core.listNamespacedPod(namespace, undefined, undefined, t, undefined, undefined, n) },
        { kind: 'Service', apiVersion: 'v1', type: 'V1Service', resource: 'services', list: (k, t, n) => k.core.listNamespacedService(namespace, undefined, undefined, t, undefined, undefined, n) },
        { kind: 'Job', apiVersion: 'batch/v1', type: 'V1Job', resource: 'jobs.batch', list: (_k, t, n) => batch.listNamespacedJob(namespace, undefined, undefined, t, undefined, undefined, n) },
        {
          kind: 'CronJob',
          apiVersion: 'batch/v1',
          type: 'V1CronJob',
          resource: 'cronjobs.batch',
          list: (_k, t, n) => batch.listNamespacedCronJob(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        {
          kind: 'HorizontalPodAutoscaler',
          apiVersion: 'autoscaling/v2',
          type: 'V2HorizontalPodAutoscaler',
          resource: 'horizontalpodautoscalers.autoscaling',
          list: (k, t, n) => k.autoscaling.listNamespacedHorizontalPodAutoscaler(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        {
          kind: 'ConfigMap',
          apiVersion: 'v1',
          type: 'V1ConfigMap',
          resource: 'configmaps',
          list: (k, t, n) => k.core.listNamespacedConfigMap(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        {
          kind: 'PersistentVolumeClaim',
          apiVersion: 'v1',
          type: 'V1PersistentVolumeClaim',
          resource: 'persistentvolumeclaims',
          list: (k, t, n) => k.core.listNamespacedPersistentVolumeClaim(namespace, undefined, undefined, t, undefined, undefined, n),
        },
        {
          kind: 'Ingress',
          apiVersion: 'networking.k8s.io/v1',
          type: 'V1Ingress',
          resource: 'ingresses.networking.k8s.io',
          list: (k, t, n) => k.networking.listNamespacedIngress(namespace, undefined, undefined, t, undefined, undefined, n),
        },
      ];
      return heartbeating(
        () => ({ snapshot: namespace }),
        async (ctx) => {
          const items: Array<Record<string, unknown>> = [];
          const counts: Record<string, number> = {};
          const unavailable: SnapshotConfigResult['unavailable'] = [];
          const changed: SnapshotConfigResult['changedInWindow'] = [];
          // The lists the overview is made of, and the error of a kind that could not be listed.
          const lists: Record<string, unknown[]> = {};
          const failed: Record<string, unknown> = {};
          for (const k of kinds) {
            throwIfCancelled(ctx);
            let listed: unknown[];
            try {
              listed = await listAll(k.resource, namespace, (token, limit) => k.list(c, token, limit));
            } catch (err) {
              // A kind this worker may not list (RBAC) or the cluster does not serve: noted, the rest still taken.
              if (err instanceof ApplicationFailure && (err.type === 'Forbidden' || err.type === 'NotFound')) {
                unavailable.push({ kind: k.kind, error: reasonOf(err) });
                failed[k.kind] = err;
                continue;
              }
              throw err;
            }
            lists[k.kind] = listed;
            counts[k.kind] = listed.length;
            for (const item of listed) {
              items.push(snapshotItem(item, k.type, k.apiVersion, k.kind));
              const meta = (item as { metadata?: V1ObjectMeta }).metadata;
              const change = k.kind === 'Pod' ? undefined : lastChange(meta, k.kind === 'ReplicaSet'); // pods come and go with every rollout: the ReplicaSets say it
              if (change && change.at >= sinceMs)
                changed.push({
                  kind: k.kind,
                  name: meta?.name ?? '',
                  at: new Date(change.at).toISOString(),
                  ...(change.manager ? { manager: change.manager } : {}),
                  ...(change.operation ? { operation: change.operation } : {}),
                });
            }
          }
          // The overview (snapshotNamespaceConfig's mapping) needs every one of its kinds: one that could not be listed fails the snapshot.
          for (const kind of ['Deployment', 'StatefulSet', 'ConfigMap', 'PersistentVolumeClaim', 'Ingress', 'Service']) if (kind in failed) throw failed[kind];
          // Secrets only for the overview, which keeps names, types and keys and drops every value: never in items.
          const secrets = await listAll<V1Secret>('secrets', namespace, (token, limit) => c.core.listNamespacedSecret(namespace, undefined, undefined, token, undefined, undefined, limit));
          const overview = namespaceSnapshotOf({
            namespace,
            // Each list is what that kind's list call returned (see kinds).
            deployments: lists.Deployment as V1Deployment[],
            statefulSets: lists.StatefulSet as V1StatefulSet[],
            configMaps: lists.ConfigMap as V1ConfigMap[],
            secrets,
            pvcs: lists.PersistentVolumeClaim as V1PersistentVolumeClaim[],
            ingresses: lists.Ingress as V1Ingress[],
            services: lists.Service as V1Service[],
          });
          counts.Secret = overview.secrets.length;
          changed.sort((a, b) => b.at.localeCompare(a.at) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
          const document = {
            namespace,
            takenAt: new Date().toISOString(),
            note: 'Secrets: names, types and keys only, never values',
            secrets: overview.secrets,
            overview: { ...overview, secrets: undefined },
            unavailable,
            changedSince: { since: new Date(sinceMs).toISOString(), objects: changed },
            items,
          };
          // Credentials in env values, ConfigMaps and last-applied annotations never reach the bucket.
          const body = toYaml(scrubForEvidence(JSON.parse(JSON.stringify(document)) as unknown), { lineWidth: 0, aliasDuplicateObjects: false });
          const written = await put(key, body, 'application/yaml');
          return {
            key: written.key,
            size: written.size,
            sha256: written.sha256,
            counts,
            secrets: overview.secrets.length,
            unavailable,
            changedInWindow: changed.slice(0, 20),
            changedInWindowTotal: changed.length,
          };
        },
      );
    },
  };
}

export type IncidentEvidenceActivities = ReturnType<typeof createIncidentEvidenceActivities>;
