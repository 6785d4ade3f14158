/** podCrashLoop's reading of what it found: which pod fails, the evidence texts, and the cause. */

import type { ContainerSummary, EventSummary, ListPodsResult, PodSummary } from '../activities/kubernetes-pods';
import type { RevisionSummary } from '../activities/kubernetes-rollouts';
import type { PodUsageResult } from '../activities/kubernetes-usage';
import { previousRevision, type DeploymentSpec } from './deployment-spec';

export type PodCrashCause = 'oom-killed' | 'code-error' | 'config-error' | 'unknown-crash' | 'healthy';

const errorLine = /\b(ERROR|FATAL|CRITICAL|panic|Traceback|Exception|Unhandled)\b/;
const configReasons = new Set(['CreateContainerConfigError', 'CreateContainerError', 'InvalidImageName']);
const crashReasons = new Set(['CrashLoopBackOff', 'Error', 'OOMKilled', 'RunContainerError']);

export function isFailing(p: PodSummary): boolean {
  if (p.terminating) return false;
  return p.containers.some(
    (c) => (c.waitingReason !== undefined && (configReasons.has(c.waitingReason) || crashReasons.has(c.waitingReason))) || c.lastTerminationReason === 'OOMKilled' || (c.restarts > 0 && !c.ready),
  );
}

/** The container of the failing pod to look at: the one named in the input, else the first one not running cleanly. */
export function failingContainerOf(failing: PodSummary, named: string | undefined): ContainerSummary | undefined {
  return (
    failing.containers.find((c) => (named ? c.name === named : c.waitingReason !== undefined || c.lastTerminationReason !== undefined || !c.ready)) ?? failing.containers.find((c) => c.name === named)
  );
}

/** The missing key / object from a CreateContainerConfigError message or event, as the kubelet writes it. */
export function missingConfig(texts: string[]): string | undefined {
  for (const text of texts) {
    const key = /couldn't find key (\S+) in (ConfigMap|Secret) (\S+)/i.exec(text);
    if (key) return `key ${key[1]} in ${key[2]} ${key[3]}`;
    const object = /(configmap|secret) "([^"]+)" not found/i.exec(text);
    if (object) return `${object[1]!.toLowerCase() === 'configmap' ? 'ConfigMap' : 'Secret'} ${object[2]}`;
  }
  return undefined;
}

const errorLinesOf = (log: string) => log.split('\n').filter((l) => errorLine.test(l));

type RolloutHistory = { currentRevision?: number; revisions: RevisionSummary[] };

export const historyText = (h: RolloutHistory) =>
  `current revision ${h.currentRevision ?? 'unknown'}; revisions ${h.revisions.map((r) => `${r.revision}${r.createdAt ? ` (${r.createdAt})` : ''}`).join(', ') || 'none'}`;
export const podsText = (p: ListPodsResult) =>
  `${p.counts.total} pods, ${p.counts.ready} ready, ${p.counts.crashLooping} in CrashLoopBackOff, ${p.counts.oomKilled} OOMKilled; ${p.pods.map((x) => `${x.name} ${x.phase} ${x.readyContainers} restarts ${x.restarts}${x.waitingReason ? ` ${x.waitingReason}` : ''}${x.lastTerminationReason ? ` last ${x.lastTerminationReason}(${x.lastExitCode})` : ''}`).join('; ')}`;
export const containersText = (d: DeploymentSpec) => d.containers.map((c) => `${c.name}: limits ${JSON.stringify(c.limits ?? {})}, requests ${JSON.stringify(c.requests ?? {})}`).join('; ');
export const eventsText = (e: { events: EventSummary[] }) => e.events.map((x) => `${x.type} ${x.reason} x${x.count}: ${x.message}`).join(' | ') || 'no events';
export const logText = (t: string) => `${errorLinesOf(t).length} error lines of ${t.split('\n').filter(Boolean).length}`;
export const usageText = (u: PodUsageResult) =>
  u.available
    ? u.pods
        .map((p) =>
          p.containers
            .map((c) => `${p.name}/${c.name} memory ${Math.round(c.memoryBytes.usage / 2 ** 20)}Mi${c.memoryBytes.percentOfLimit !== undefined ? ` (${c.memoryBytes.percentOfLimit}% of limit)` : ''}`)
            .join(', '),
        )
        .join('; ') || 'no pod metrics'
    : `metrics unavailable: ${u.reason}`;

/** What the diagnosis read: the Deployment's rollout history, pods, memory limit and usage; the failing pod, its events and previous logs. */
export interface Diagnosis {
  history: RolloutHistory;
  pods: ListPodsResult;
  failing?: PodSummary;
  failingContainer?: ContainerSummary;
  container: string;
  limit?: string;
  events: EventSummary[];
  previousLog: string;
  usage: PodUsageResult;
}

/** Why the pods crash, and what the diagnosis says about it. */
export interface Classification {
  cause: PodCrashCause;
  missing?: string;
  errorLines: string[];
  previous?: RevisionSummary;
  rolloutAgeMinutes?: number;
}

/** Classification: config error, OOMKilled, code error (a recent rollout and error lines in the previous logs), unclassified, or healthy. */
export function classify(d: Diagnosis, recentRolloutMinutes: number): Classification {
  const { history, failing, failingContainer } = d;
  const missing = missingConfig(d.events.map((e) => e.message));
  const errorLines = errorLinesOf(d.previousLog);
  const current = history.revisions.find((r) => r.revision === history.currentRevision);
  const rolloutAgeMinutes = current?.createdAt ? (Date.now() - new Date(current.createdAt).getTime()) / 60_000 : undefined;
  const recentRollout = rolloutAgeMinutes !== undefined && rolloutAgeMinutes <= recentRolloutMinutes;
  let cause: PodCrashCause;
  if (!failing) cause = 'healthy';
  else if ((failingContainer?.waitingReason && configReasons.has(failingContainer.waitingReason)) || missing) cause = 'config-error';
  else if (failingContainer?.lastTerminationReason === 'OOMKilled') cause = 'oom-killed';
  else if (recentRollout && errorLines.length > 0) cause = 'code-error';
  else cause = 'unknown-crash';
  return { cause, missing, errorLines, previous: previousRevision(history), rolloutAgeMinutes };
}
