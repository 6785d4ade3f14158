import type { EventSummary, PodSummary } from '../activities/kubernetes-pods';
import type { RevisionSummary } from '../activities/kubernetes-rollouts';
import { type PodCrashLoopInput } from '../common/inputs/pod-crash-loop';
import { memoryBytes, raisedMemoryLimit } from '../common/quantity';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { containerOf, deploymentOf, livePods, podCounts, previousRevision } from './deployment-spec';
import { RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read, wait, write } from './activity-proxies';
import { catalog } from '../common/catalog';

/** Waiting for a rollout polls and heartbeats. */

export type PodCrashCause = 'oom-killed' | 'code-error' | 'config-error' | 'unknown-crash' | 'healthy';

export interface PodCrashLoopResult extends RunbookResultBase {
  cause: PodCrashCause;
  /** The pod the diagnosis looked at, when one was failing. */
  pod?: string;
  container?: string;
  /** Config error: the missing ConfigMap/Secret key (or object) as the kubelet named it. */
  missing?: string;
  /** OOMKilled: the memory limit before and the one the run raises to (computed once from the diagnosis). */
  memoryLimit?: string;
  targetMemoryLimit?: string;
  /** Code error: the revision crashing and the one rolled back to. */
  currentRevision?: number;
  rollbackToRevision?: number;
  /** Pods after the change (execute mode). */
  after?: { pods: number; ready: number; crashLooping: number; revision?: number };
}

const errorLine = /\b(ERROR|FATAL|CRITICAL|panic|Traceback|Exception|Unhandled)\b/;
const configReasons = new Set(['CreateContainerConfigError', 'CreateContainerError', 'InvalidImageName']);
const crashReasons = new Set(['CrashLoopBackOff', 'Error', 'OOMKilled', 'RunContainerError']);

function isFailing(p: PodSummary): boolean {
  if (p.terminating) return false;
  return p.containers.some(
    (c) => (c.waitingReason !== undefined && (configReasons.has(c.waitingReason) || crashReasons.has(c.waitingReason))) || c.lastTerminationReason === 'OOMKilled' || (c.restarts > 0 && !c.ready),
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

/**
 * 场景1 Pod CrashLoopBackOff: pod status and restarts of the Deployment's pods, events of the
 * failing pod, its previous container's logs, usage vs limits and the rollout history; then
 * OOMKilled: ⚠ raise the memory limit (×factor, capped; the target is computed once from the
 * diagnosis, so it is never raised twice); code error (crash right after the newest rollout with
 * error lines in the previous logs): ⚠ roll back to the previous revision (named explicitly);
 * config error: no change, the report names the missing key; healthy: nothing to do.
 */
export async function podCrashLoop(raw: PodCrashLoopInput): Promise<PodCrashLoopResult> {
  const input = validateInput(catalog.podCrashLoop, raw);
  const { namespace, deployment } = input;
  const run = await RunbookRun.begin(catalog.podCrashLoop, input, 10);
  await read.assertTargetsAllowed({ namespaces: [namespace], names: [{ name: deployment, what: 'deployment' }, ...(input.container ? [{ name: input.container, what: 'container' }] : [])] });

  // Diagnosis (read-only).
  const history = await run.read(
    'rollout-history',
    `Rollout history of ${namespace}/${deployment}`,
    () => read.getRolloutHistory({ namespace, deployment }),
    (h) => `current revision ${h.currentRevision ?? 'unknown'}; revisions ${h.revisions.map((r) => `${r.revision}${r.createdAt ? ` (${r.createdAt})` : ''}`).join(', ') || 'none'}`,
  );
  const pods = await run.read(
    'pods',
    `Pods of ${namespace}/${deployment} (by its selector)`,
    () => read.listPodSummaries({ namespace, deployment }),
    (p) =>
      `${p.counts.total} pods, ${p.counts.ready} ready, ${p.counts.crashLooping} in CrashLoopBackOff, ${p.counts.oomKilled} OOMKilled; ${p.pods.map((x) => `${x.name} ${x.phase} ${x.readyContainers} restarts ${x.restarts}${x.waitingReason ? ` ${x.waitingReason}` : ''}${x.lastTerminationReason ? ` last ${x.lastTerminationReason}(${x.lastExitCode})` : ''}`).join('; ')}`,
  );
  const failing = pods.pods.find(isFailing);
  const failingContainer = failing
    ? (failing.containers.find((c) => (input.container ? c.name === input.container : c.waitingReason !== undefined || c.lastTerminationReason !== undefined || !c.ready)) ??
      failing.containers.find((c) => c.name === input.container))
    : undefined;
  const snapshot = await run.read(
    'deployment',
    `Containers and limits of ${namespace}/${deployment}`,
    async () => deploymentOf(await read.snapshotNamespaceConfig({ namespace }), deployment),
    (d) => d.containers.map((c) => `${c.name}: limits ${JSON.stringify(c.limits ?? {})}, requests ${JSON.stringify(c.requests ?? {})}`).join('; '),
  );
  const container = input.container ?? failingContainer?.name ?? snapshot.containers[0]?.name ?? '';
  const spec = containerOf({ namespace, deployment }, snapshot.containers, container);

  let events: EventSummary[] = [];
  let previousLog = '';
  if (failing) {
    events = (
      await run.read(
        'pod-events',
        `Events of pod ${failing.name}`,
        () => read.getObjectEvents({ namespace, kind: 'Pod', name: failing.name, limit: 50 }),
        (e) => e.events.map((x) => `${x.type} ${x.reason} x${x.count}: ${x.message}`).join(' | ') || 'no events',
      )
    ).events;
    if (failing.restarts > 0 || failingContainer?.lastTerminationReason) {
      previousLog = await run.read(
        'previous-logs',
        `Logs of the previous ${container} container of ${failing.name}`,
        async () => {
          try {
            return (await read.getContainerLogs({ namespace, pod: failing.name, container, previous: true, tailLines: 200 })).text;
          } catch (err) {
            return `(previous logs unavailable: ${(err as Error).message})`;
          }
        },
        (t) => `${t.split('\n').filter((l) => errorLine.test(l)).length} error lines of ${t.split('\n').filter(Boolean).length}`,
      );
    }
  }
  const usage = await run.read(
    'usage',
    `Resource usage vs limits of ${namespace}/${deployment}`,
    () => read.getPodUsage({ namespace, deployment }),
    (u) =>
      u.available
        ? u.pods
            .map((p) =>
              p.containers
                .map(
                  (c) => `${p.name}/${c.name} memory ${Math.round(c.memoryBytes.usage / 2 ** 20)}Mi${c.memoryBytes.percentOfLimit !== undefined ? ` (${c.memoryBytes.percentOfLimit}% of limit)` : ''}`,
                )
                .join(', '),
            )
            .join('; ') || 'no pod metrics'
        : `metrics unavailable: ${u.reason}`,
  );

  // Classification.
  const waitingMessages = events.map((e) => e.message);
  const missing = missingConfig(waitingMessages);
  const errorLines = previousLog.split('\n').filter((l) => errorLine.test(l));
  const current = history.revisions.find((r) => r.revision === history.currentRevision);
  const previous: RevisionSummary | undefined = previousRevision(history);
  const rolloutAgeMinutes = current?.createdAt ? (Date.now() - new Date(current.createdAt).getTime()) / 60_000 : undefined;
  const recentRollout = rolloutAgeMinutes !== undefined && rolloutAgeMinutes <= input.recentRolloutMinutes;
  let cause: PodCrashCause;
  if (!failing) cause = 'healthy';
  else if ((failingContainer?.waitingReason && configReasons.has(failingContainer.waitingReason)) || missing) cause = 'config-error';
  else if (failingContainer?.lastTerminationReason === 'OOMKilled') cause = 'oom-killed';
  else if (recentRollout && errorLines.length > 0) cause = 'code-error';
  else cause = 'unknown-crash';

  // OOMKilled: the target computed once from the diagnosis.
  const limit = spec.limits?.memory;
  const limitBytes = memoryBytes(limit);
  const target = raisedMemoryLimit(limitBytes, input.memoryLimitFactor, input.maxMemoryLimit);
  const raiseWanted = cause === 'oom-killed' && target !== undefined && memoryBytes(target)! > limitBytes!;
  const rollbackWanted = cause === 'code-error' && previous !== undefined;

  await run.change({
    stepId: 'raise-memory-limit',
    title: `Raise the memory limit of ${namespace}/${deployment} container ${container}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      if (cause !== 'oom-killed') return { summary: `memory limit stays ${limit ?? 'unset'} (no OOMKilled container)`, needed: false };
      if (!limit || !target) return { summary: `${namespace}/${deployment} container ${container} has no memory limit to raise`, needed: false };
      if (!raiseWanted) return { summary: `memory limit stays ${limit} (already at the cap ${input.maxMemoryLimit})`, needed: false };
      const dry = await read.setContainerResources({ namespace, deployment, container, limits: { memory: target }, dryRun: true });
      return {
        summary: `memory limit of ${namespace}/${deployment} container ${container} ${limit} -> ${target} (x${input.memoryLimitFactor}, cap ${input.maxMemoryLimit})`,
        details: { from: limit, to: target },
        needed: dry.changed,
        observed: { current: dry.before.limits.memory },
      };
    },
    apply: async () => {
      const done = await write.setContainerResources({ namespace, deployment, container, limits: { memory: target } });
      const rollout = await wait.waitForRolloutComplete({ namespace, deployment, timeoutSeconds: 240 });
      return `${done.changed ? `${done.message}: limits.memory ${done.before.limits.memory ?? 'none'} -> ${done.after.limits.memory}` : `limits.memory already ${done.after.limits.memory}`}; rollout complete (revision ${rollout.revision ?? '?'}, ${rollout.availableReplicas}/${rollout.replicas} available)`;
    },
  });

  await run.change({
    stepId: 'rollback',
    title: `Roll back ${namespace}/${deployment} to the previous revision`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      if (cause !== 'code-error') return { summary: `no rollback (${cause === 'healthy' ? 'pods are healthy' : `cause ${cause}`})`, needed: false };
      if (!previous) return { summary: `no rollback: ${namespace}/${deployment} has no revision before ${history.currentRevision ?? 'the current one'}`, needed: false };
      const dry = await read.rollbackDeployment({ namespace, deployment, toRevision: previous.revision, dryRun: true });
      return {
        summary: `roll back ${namespace}/${deployment} from revision ${history.currentRevision} to revision ${previous.revision} (${previous.replicaSet}: ${previous.images.join(', ')})`,
        details: { from: history.currentRevision, to: previous.revision, replicaSet: previous.replicaSet },
        needed: dry.changed,
        observed: { revision: dry.before.revision },
      };
    },
    apply: async () => {
      const done = await write.rollbackDeployment({ namespace, deployment, toRevision: previous!.revision });
      const rollout = await wait.waitForRolloutComplete({ namespace, deployment, timeoutSeconds: 240 });
      return `${done.changed ? `rolled back to revision ${done.toRevision} (now revision ${rollout.revision ?? '?'})` : `already on the template of revision ${done.toRevision}`}; rollout complete (${rollout.availableReplicas}/${rollout.replicas} available)`;
    },
  });

  const applied = (stepId: string) => run.outcomeOf(stepId) === 'applied';
  let after: PodCrashLoopResult['after'];
  if (input.mode === 'execute' && (applied('raise-memory-limit') || applied('rollback'))) {
    after = await run.read(
      'verify',
      `Pods and rollout of ${namespace}/${deployment} after the change`,
      async () => {
        const [p, h] = await Promise.all([read.listPodSummaries({ namespace, deployment }), read.getRolloutHistory({ namespace, deployment })]);
        const counts = podCounts(p.pods);
        return {
          pods: counts.pods,
          ready: counts.readyPods,
          crashLooping: livePods(p.pods).filter((x) => x.containers.some((c) => c.waitingReason === 'CrashLoopBackOff')).length,
          ...(h.currentRevision !== undefined ? { revision: h.currentRevision } : {}),
        };
      },
      (a) => `${a.ready}/${a.pods} pods ready, ${a.crashLooping} in CrashLoopBackOff, revision ${a.revision ?? '?'}`,
    );
  }

  const podText = failing
    ? `pod ${failing.name} container ${container} (${failingContainer?.waitingReason ?? failing.phase}, ${failing.restarts} restarts, last ${failingContainer?.lastTerminationReason ?? 'none'}${failingContainer?.lastExitCode !== undefined ? ` exit ${failingContainer.lastExitCode}` : ''})`
    : 'no failing pod';
  const rootCause: Record<PodCrashCause, string> = {
    'oom-killed': `OOMKilled: ${podText} was killed at its memory limit ${limit ?? '(none)'}.`,
    'code-error': `Code error: ${podText} crashes since revision ${history.currentRevision} (rolled out ${rolloutAgeMinutes !== undefined ? `${Math.round(rolloutAgeMinutes)} min` : '?'} ago); the previous container logged: ${errorLines.slice(-3).join(' | ')}`,
    'config-error': `Config error: ${podText}; missing ${missing ?? 'configuration'}${failingContainer?.waitingReason ? ` (${failingContainer.waitingReason})` : ''}.`,
    'unknown-crash': `Unclassified crash: ${podText}; ${errorLines.length} error lines in the previous logs, newest rollout ${rolloutAgeMinutes !== undefined ? `${Math.round(rolloutAgeMinutes)} min` : 'of unknown age'} ago.`,
    healthy: `All ${pods.counts.total} pods of ${namespace}/${deployment} are healthy (${pods.counts.ready} ready).`,
  };
  const solution: Record<PodCrashCause, string> = {
    'oom-killed': applied('raise-memory-limit')
      ? `Memory limit of ${namespace}/${deployment} container ${container} raised ${limit} -> ${target}.`
      : `Memory limit not changed (${run.outcomeOf('raise-memory-limit')}; ${limit ?? 'none'}${target ? `, proposed ${target}` : ''}).`,
    'code-error': applied('rollback')
      ? `${namespace}/${deployment} rolled back from revision ${history.currentRevision} to revision ${previous?.revision}.`
      : `Not rolled back (${run.outcomeOf('rollback')}${previous ? `; proposed revision ${previous.revision}` : '; no previous revision'}).`,
    'config-error': `No automatic change: create the missing ${missing ?? 'ConfigMap/Secret key'} and the pods start on their own.`,
    'unknown-crash': 'No automatic change: the cause needs a person (see the events and previous logs in the evidence).',
    healthy: 'Nothing to do.',
  };
  const result = await run.finish(
    `${cause}${failing ? ` (${podText})` : ''}${missing ? `; missing ${missing}` : ''}${after ? `; after: ${after.ready}/${after.pods} ready, ${after.crashLooping} crash-looping` : ''}`,
    {
      impact: failing
        ? `${pods.counts.notReady} of ${pods.counts.total} pods of ${namespace}/${deployment} not ready (${pods.counts.crashLooping} in CrashLoopBackOff); usage: ${usage.available ? 'see evidence' : `metrics unavailable (${usage.reason})`}.`
        : `None: ${pods.counts.ready} of ${pods.counts.total} pods ready.`,
      rootCause: rootCause[cause],
      solution: solution[cause],
      prevention:
        cause === 'oom-killed'
          ? `Size memory limits from observed peaks (alert at 85% of the limit), and profile the app for leaks; the cap is ${input.maxMemoryLimit}.`
          : cause === 'code-error'
            ? 'Canary or staged rollouts with readiness checks and automatic rollback on crash loops; test before release.'
            : cause === 'config-error'
              ? 'Validate ConfigMaps and Secrets before rollout (required keys checked in CI); use optional: false references deliberately.'
              : 'Keep liveness/readiness probes and alerts on restarts in place.',
    },
  );
  return {
    ...result,
    cause,
    ...(failing ? { pod: failing.name } : {}),
    container,
    ...(missing ? { missing } : {}),
    ...(limit ? { memoryLimit: limit } : {}),
    ...(raiseWanted && target ? { targetMemoryLimit: target } : {}),
    ...(history.currentRevision !== undefined ? { currentRevision: history.currentRevision } : {}),
    ...(rollbackWanted ? { rollbackToRevision: previous!.revision } : {}),
    ...(after ? { after } : {}),
  };
}
