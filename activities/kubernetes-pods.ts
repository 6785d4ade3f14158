import type { CoreV1Event, V1ContainerStateTerminated, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { invalidInput } from './errors';
import { containerHasEnded, guarded, kcall, pickPod, readPodLog, podSelectorOf, positiveInt, type KubeScope, type PodScope } from './kubernetes-common';
import { forEachListPage, pageSizeOf } from './kubernetes-paging';

export interface ContainerSummary {
  name: string;
  ready: boolean;
  restarts: number;
  /** running, waiting, terminated or unknown. */
  state: string;
  waitingReason?: string;
  lastTerminationReason?: string;
  lastExitCode?: number;
  /** Set when it restarts over and over (see restartingAfterFailures). */
  crashLooping?: true;
}

export interface PodSummary {
  name: string;
  phase: string;
  ready: boolean;
  /** "ready/total" containers, as kubectl shows it. */
  readyContainers: string;
  restarts: number;
  node?: string;
  /** First waiting reason of a container, e.g. CrashLoopBackOff. */
  waitingReason?: string;
  /** First last-termination reason of a container, e.g. OOMKilled. */
  lastTerminationReason?: string;
  lastExitCode?: number;
  /** Set when a container restarts over and over (see restartingAfterFailures). */
  crashLooping?: true;
  /** Set while the pod is being deleted. */
  terminating?: boolean;
  createdAt?: string;
  containers: ContainerSummary[];
  /** limits.memory of the pod's own containers by name (what the pod runs with, whatever its Deployment says now). */
  memoryLimits?: Record<string, string>;
}

export interface ListPodsInput extends PodScope {
  namespace: string;
  /** Items per LIST page (default 500, at most 5000). */
  pageSize?: number;
}

export interface ListPodsResult {
  namespace: string;
  pods: PodSummary[];
  /** LIST requests made (one per page). */
  pages: number;
  counts: { total: number; ready: number; notReady: number; crashLooping: number; oomKilled: number };
}

/** How soon after a restart a failing container is still counted as in its loop (it dies again within seconds). */
const restartCycleMs = 60_000;

const failed = (t: V1ContainerStateTerminated | undefined) => t !== undefined && t.exitCode !== 0;

/**
 * A container in a crash loop. Most of the time the kubelet shows it waiting in CrashLoopBackOff,
 * but between two back-offs it is briefly terminated (just died) or running (just restarted): a
 * check that looks only for the waiting reason passes a crash-looping pod caught at that moment.
 */
export function restartingAfterFailures(s: V1ContainerStatus, now = Date.now()): boolean {
  if (s.state?.waiting?.reason === 'CrashLoopBackOff') return true;
  if ((s.restartCount ?? 0) === 0 || s.ready) return false;
  if (failed(s.state?.terminated)) return true;
  const startedAt = s.state?.running?.startedAt;
  return failed(s.lastState?.terminated) && startedAt !== undefined && now - new Date(startedAt).getTime() < restartCycleMs;
}

function containerSummary(s: V1ContainerStatus): ContainerSummary {
  const state = s.state?.running ? 'running' : s.state?.waiting ? 'waiting' : s.state?.terminated ? 'terminated' : 'unknown';
  const last = s.lastState?.terminated;
  const summary: ContainerSummary = { name: s.name, ready: s.ready === true, restarts: s.restartCount ?? 0, state };
  if (s.state?.waiting?.reason) summary.waitingReason = s.state.waiting.reason;
  if (restartingAfterFailures(s)) summary.crashLooping = true;
  if (last?.reason) summary.lastTerminationReason = last.reason;
  if (last?.exitCode !== undefined) summary.lastExitCode = last.exitCode;
  else if (s.state?.terminated) {
    summary.lastTerminationReason ??= s.state.terminated.reason;
    summary.lastExitCode = s.state.terminated.exitCode;
  }
  return summary;
}

export function podSummary(pod: V1Pod): PodSummary {
  const containers = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].map(containerSummary);
  const regular = (pod.status?.containerStatuses ?? []).length || (pod.spec?.containers.length ?? 0);
  const readyCount = (pod.status?.containerStatuses ?? []).filter((c) => c.ready).length;
  const summary: PodSummary = {
    name: pod.metadata?.name ?? '',
    phase: pod.status?.phase ?? 'Unknown',
    ready: pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
    readyContainers: `${readyCount}/${regular}`,
    restarts: containers.reduce((n, c) => n + c.restarts, 0),
    containers,
  };
  if (pod.spec?.nodeName) summary.node = pod.spec.nodeName;
  const waiting = containers.find((c) => c.waitingReason);
  if (waiting) summary.waitingReason = waiting.waitingReason;
  const terminated = containers.find((c) => c.lastTerminationReason || c.lastExitCode !== undefined);
  if (terminated?.lastTerminationReason) summary.lastTerminationReason = terminated.lastTerminationReason;
  if (terminated?.lastExitCode !== undefined) summary.lastExitCode = terminated.lastExitCode;
  if (containers.some((c) => c.crashLooping)) summary.crashLooping = true;
  if (pod.metadata?.deletionTimestamp) summary.terminating = true;
  if (pod.metadata?.creationTimestamp) summary.createdAt = new Date(pod.metadata.creationTimestamp).toISOString();
  const limits = (pod.spec?.containers ?? []).flatMap((c) => (c.resources?.limits?.memory ? [[c.name, c.resources.limits.memory] as const] : []));
  if (limits.length > 0) summary.memoryLimits = Object.fromEntries(limits);
  return summary;
}

export interface EventSummary {
  type: string;
  reason: string;
  message: string;
  count: number;
  object: string;
  /** Latest occurrence (lastTimestamp, eventTime or creation time). */
  lastSeen?: string;
  source?: string;
}

function eventTime(e: CoreV1Event): Date | undefined {
  const t = e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  return t ? new Date(t as unknown as string) : undefined;
}

export function eventSummary(e: CoreV1Event): EventSummary {
  const at = eventTime(e);
  const summary: EventSummary = {
    type: e.type ?? 'Normal',
    reason: e.reason ?? '',
    message: (e.message ?? '').slice(0, 1000),
    count: e.count ?? e.series?.count ?? 1,
    object: `${e.involvedObject.kind ?? ''}/${e.involvedObject.name ?? ''}`,
  };
  if (at && !Number.isNaN(at.getTime())) summary.lastSeen = at.toISOString();
  const source = e.source?.component ?? e.reportingComponent;
  if (source) summary.source = source;
  return summary;
}

const byTime = (a: EventSummary, b: EventSummary) => (a.lastSeen ?? '').localeCompare(b.lastSeen ?? '');

export interface ObjectEventsInput {
  namespace: string;
  /** Kind of the object, e.g. Pod, Deployment, Certificate. */
  kind?: string;
  name: string;
  /** Newest N (default 50, at most 500). */
  limit?: number;
}

export interface NamespaceEventsInput {
  namespace: string;
  /** ISO time; only events last seen at or after it. */
  since: string;
  /** Only Warning (or Normal) events. */
  type?: 'Warning' | 'Normal';
  /** Newest N (default 200, at most 1000). */
  limit?: number;
}

export interface LogsInput {
  namespace: string;
  /** The pod, or a deployment whose first Ready pod is read (as `kubectl logs deployment/x`). */
  pod?: string;
  deployment?: string;
  container?: string;
  tailLines?: number;
  sinceSeconds?: number;
  previous?: boolean;
  /** Cap on returned bytes (default 64 KiB, at most 1 MiB); the newest lines are kept. */
  maxBytes?: number;
}

export interface LogsResult {
  pod: string;
  container?: string;
  previous: boolean;
  text: string;
  lines: number;
  bytes: number;
  truncated: boolean;
}

const eventKinds = /^[A-Z][A-Za-z0-9]{0,62}$/;

export function createKubernetesPodActivities(scope: KubeScope) {
  async function listEvents(namespace: string, fieldSelector: string | undefined, cap: number): Promise<EventSummary[]> {
    const { core } = guarded(scope, namespace);
    const events: EventSummary[] = [];
    let token: string | undefined;
    do {
      const { body } = await kcall('list', 'events', namespace, () => core.listNamespacedEvent(namespace, undefined, undefined, token, fieldSelector, undefined, 500));
      events.push(...body.items.map(eventSummary));
      token = body.metadata?._continue || undefined;
    } while (token);
    return events.sort(byTime).slice(-cap);
  }

  return {
    /** Pods of a namespace with a status summary: one LIST call per page, never one call per pod. */
    async listPodSummaries(input: ListPodsInput): Promise<ListPodsResult> {
      const { namespace } = input;
      const c = guarded(scope, namespace, { deployment: input.deployment });
      const { core } = c;
      const pageSize = pageSizeOf(input.pageSize);
      const labelSelector = await podSelectorOf(c, namespace, input);
      const pods: PodSummary[] = [];
      const pages = await forEachListPage(
        'pods',
        namespace,
        pageSize,
        (token, limit) => core.listNamespacedPod(namespace, undefined, undefined, token, undefined, labelSelector, limit),
        (items) => items.forEach((pod) => pods.push(podSummary(pod))),
      );
      const ready = pods.filter((p) => p.ready).length;
      return {
        namespace,
        pods,
        pages,
        counts: {
          total: pods.length,
          ready,
          notReady: pods.length - ready,
          crashLooping: pods.filter((p) => p.crashLooping).length,
          oomKilled: pods.filter((p) => p.containers.some((c) => c.lastTerminationReason === 'OOMKilled')).length,
        },
      };
    },

    /** Events of one object (what `kubectl describe` shows at the bottom), oldest first. */
    async getObjectEvents(input: ObjectEventsInput): Promise<{ object: string; events: EventSummary[] }> {
      const { namespace, name, kind } = input;
      guarded(scope, namespace, { name });
      if (kind !== undefined && !eventKinds.test(kind)) throw invalidInput(`invalid kind "${kind}": expected a Kubernetes kind such as Pod`);
      positiveInt(input.limit, 'limit', 500);
      const selector = [`involvedObject.name=${name}`, ...(kind ? [`involvedObject.kind=${kind}`] : [])].join(',');
      return { object: `${kind ?? '*'}/${name}`, events: await listEvents(namespace, selector, input.limit ?? 50) };
    },

    /** Events of a namespace last seen at or after `since`, oldest first (capped to the newest `limit`). */
    async listNamespaceEvents(input: NamespaceEventsInput): Promise<{ namespace: string; since: string; events: EventSummary[] }> {
      const since = new Date(input.since);
      if (typeof input.since !== 'string' || Number.isNaN(since.getTime())) throw invalidInput(`invalid since "${String(input.since)}": expected an ISO time`);
      if (input.type !== undefined && input.type !== 'Warning' && input.type !== 'Normal') throw invalidInput('type must be Warning or Normal');
      positiveInt(input.limit, 'limit', 1000);
      const all = await listEvents(input.namespace, input.type ? `type=${input.type}` : undefined, Number.MAX_SAFE_INTEGER);
      const events = all.filter((e) => e.lastSeen !== undefined && e.lastSeen >= since.toISOString());
      return { namespace: input.namespace, since: since.toISOString(), events: events.slice(-(input.limit ?? 200)) };
    },

    /** A container's log (tail, since; with previous, its newest ended instance's), capped in size on the server and here. */
    async getContainerLogs(input: LogsInput): Promise<LogsResult> {
      const { namespace, container } = input;
      const c = guarded(scope, namespace, { pod: input.pod, deployment: input.deployment, container });
      const { core } = c;
      const pod = input.deployment ? ((await pickPod(c, namespace, input)).metadata?.name ?? '') : input.pod;
      if (!pod || (input.pod && input.deployment)) throw invalidInput('give exactly one of pod or deployment');
      positiveInt(input.tailLines, 'tailLines', 100_000);
      positiveInt(input.sinceSeconds, 'sinceSeconds', 90 * 86_400);
      const maxBytes = input.maxBytes ?? 65_536;
      if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > 1_048_576) throw invalidInput('maxBytes must be an integer between 1 and 1048576');
      const previous = input.previous === true;
      // The server's limitBytes keeps the oldest bytes: it only bounds memory here; the newest maxBytes are kept below.
      const limitBytes = 8 * 1_048_576;
      const action = `get logs of pods/${pod}${container ? ` container ${container}` : ''}${previous ? ' (previous)' : ''}`;
      const full = await readPodLog(
        action,
        (previous) =>
          kcall(action, 'pods/log', namespace, () => core.readNamespacedPodLog(pod, namespace, container, false, undefined, limitBytes, undefined, previous, input.sinceSeconds, input.tailLines)),
        { previous, currentHasEnded: () => containerHasEnded(c, namespace, pod, container) },
      );
      const buffer = Buffer.from(full, 'utf8');
      let text = full;
      let truncated = false;
      if (buffer.length > maxBytes) {
        truncated = true;
        text = buffer.subarray(buffer.length - maxBytes).toString('utf8');
        const firstNewline = text.indexOf('\n');
        if (firstNewline >= 0 && firstNewline < text.length - 1) text = text.slice(firstNewline + 1);
      }
      const result: LogsResult = { pod, previous, text, lines: text === '' ? 0 : text.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1).length, bytes: Buffer.byteLength(text), truncated };
      if (container) result.container = container;
      return result;
    },
  };
}
