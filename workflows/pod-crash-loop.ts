import type { z } from 'zod';
import type { ContainerSummary, EventSummary, PodSummary } from '../activities/kubernetes-pods';
import { type PodCrashLoopInput, type podCrashLoopInput } from '../common/inputs/pod-crash-loop';
import { memoryBytes, raisedMemoryLimit } from '../common/quantity';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { containerOf, deploymentOf, livePods, podCounts } from './deployment-spec';
import { RunbookRun } from './kernel/runbook-run';
import {
  classify,
  containersText,
  eventsText,
  failingContainerOf,
  historyText,
  isFailing,
  logText,
  podsText,
  usageText,
  type Classification,
  type Diagnosis,
  type PodCrashCause,
} from './pod-crash-loop-diagnosis';
import { reportCrashLoop } from './pod-crash-loop-report';
import { validateInput } from './validate-input';
import { read, wait, write } from './activity-proxies';
import { catalog } from '../common/catalog';

export type { PodCrashCause } from './pod-crash-loop-diagnosis';

/** Waiting for a rollout polls and heartbeats. */

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

type Input = z.infer<typeof podCrashLoopInput>;

/** What the steps and the report share: the run, the Deployment, the diagnosis, its cause and the change it calls for. */
export interface CrashLoop extends Diagnosis, Classification {
  run: RunbookRun<PodCrashLoopStep>;
  input: Input;
  namespace: string;
  deployment: string;
  /** OOMKilled: the memory limit to raise to, computed once from the diagnosis. */
  target?: string;
  raiseWanted: boolean;
  rollbackWanted: boolean;
}

/** The run's steps in order; helpers take a run typed by them, so a step id is checked by tsc. */
const podCrashLoopSteps = ['rollout-history', 'pods', 'deployment', 'pod-events', 'previous-logs', 'usage', 'raise-memory-limit', 'rollback', 'verify'] as const;
export type PodCrashLoopStep = (typeof podCrashLoopSteps)[number];

/**
 * 场景1 Pod CrashLoopBackOff. What it does: catalog.podCrashLoop.
 * The memory target is computed once from the diagnosis, so it is never raised twice; the rollback
 * names its revision explicitly so a re-run cannot roll back further. Healthy: nothing to do.
 */
export async function podCrashLoop(raw: PodCrashLoopInput): Promise<PodCrashLoopResult> {
  const input = validateInput(catalog.podCrashLoop, raw);
  const { namespace, deployment } = input;
  const run = await RunbookRun.begin(catalog.podCrashLoop, input, podCrashLoopSteps);
  await read.assertTargetsAllowed({ namespaces: [namespace], names: [{ name: deployment, what: 'deployment' }, ...(input.container ? [{ name: input.container, what: 'container' }] : [])] });

  const c = crashLoopOf(run, input, await diagnose(run, input));
  await raiseMemoryLimitStep(c);
  await rollbackStep(c);
  const after = await verifyAfter(c);
  return reportCrashLoop(c, after);
}

/** Diagnosis (read-only): rollout history, pods, the Deployment's containers and limits, the failing pod's events and previous logs, usage. */
async function diagnose(run: RunbookRun<PodCrashLoopStep>, input: Input): Promise<Diagnosis> {
  const { namespace, deployment } = input;
  const history = await run.read('rollout-history', `Rollout history of ${namespace}/${deployment}`, () => read.getRolloutHistory({ namespace, deployment }), historyText);
  const pods = await run.read('pods', `Pods of ${namespace}/${deployment} (by its selector)`, () => read.listPodSummaries({ namespace, deployment }), podsText);
  const failing = pods.pods.find(isFailing);
  const failingContainer = failing ? failingContainerOf(failing, input.container) : undefined;
  const snapshot = await run.read(
    'deployment',
    `Containers and limits of ${namespace}/${deployment}`,
    async () => deploymentOf(await read.snapshotNamespaceConfig({ namespace }), deployment),
    containersText,
  );
  const container = input.container ?? failingContainer?.name ?? snapshot.containers[0]?.name ?? '';
  const spec = containerOf({ namespace, deployment }, snapshot.containers, container);
  const { events, previousLog } = failing ? await readFailingPod(run, namespace, failing, failingContainer, container) : { events: [], previousLog: '' };
  const usage = await run.read('usage', `Resource usage vs limits of ${namespace}/${deployment}`, () => read.getPodUsage({ namespace, deployment }), usageText);
  return { history, pods, failing, failingContainer, container, limit: spec.limits?.memory, events, previousLog, usage };
}

/** The failing pod's events, and its previous container's logs when it restarted or terminated. */
async function readFailingPod(
  run: RunbookRun<PodCrashLoopStep>,
  namespace: string,
  failing: PodSummary,
  failingContainer: ContainerSummary | undefined,
  container: string,
): Promise<{ events: EventSummary[]; previousLog: string }> {
  const { events } = await run.read('pod-events', `Events of pod ${failing.name}`, () => read.getObjectEvents({ namespace, kind: 'Pod', name: failing.name, limit: 50 }), eventsText);
  if (!(failing.restarts > 0 || failingContainer?.lastTerminationReason)) return { events, previousLog: '' };
  const previousLog = await run.read(
    'previous-logs',
    `Logs of the previous ${container} container of ${failing.name}`,
    async () => {
      try {
        return (await read.getContainerLogs({ namespace, pod: failing.name, container, previous: true, tailLines: 200 })).text;
      } catch (err) {
        return `(previous logs unavailable: ${(err as Error).message})`;
      }
    },
    logText,
  );
  return { events, previousLog };
}

/** The cause and the change it calls for, computed once from the diagnosis (so a limit is never raised twice). */
function crashLoopOf(run: RunbookRun<PodCrashLoopStep>, input: Input, d: Diagnosis): CrashLoop {
  const why = classify(d, input.recentRolloutMinutes);
  const limitBytes = memoryBytes(d.limit);
  const target = raisedMemoryLimit(limitBytes, input.memoryLimitFactor, input.maxMemoryLimit);
  const raiseWanted = why.cause === 'oom-killed' && target !== undefined && memoryBytes(target)! > limitBytes!;
  const rollbackWanted = why.cause === 'code-error' && why.previous !== undefined;
  return { run, input, namespace: input.namespace, deployment: input.deployment, ...d, ...why, target, raiseWanted, rollbackWanted };
}

/** OOMKilled: ⚠ raise the container's memory limit to the target, then wait for the rollout. */
async function raiseMemoryLimitStep(c: CrashLoop): Promise<void> {
  const { run, input, namespace, deployment, container, cause, limit, target, raiseWanted } = c;
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
}

/** Code error: ⚠ roll back to the revision before the current one (named explicitly), then wait for the rollout. */
async function rollbackStep(c: CrashLoop): Promise<void> {
  const { run, namespace, deployment, cause, history, previous } = c;
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
}

/** What the verify step reads: the live pods, the container's memory limit in each, and the Deployment's current revision and images. */
type AfterChange = NonNullable<PodCrashLoopResult['after']> & { memoryLimits: string[]; images: string[] };

/**
 * Execute mode, after a change: what it promised read back from the cluster. Every live pod Ready
 * and none crash-looping; after a raise, each runs the new memory limit; after a rollback, the
 * Deployment runs the images of the revision rolled back to.
 */
async function verifyAfter(c: CrashLoop): Promise<PodCrashLoopResult['after']> {
  const { run, input, namespace, deployment, container, target, previous } = c;
  if (input.mode !== 'execute' || !(run.applied('raise-memory-limit') || run.applied('rollback'))) return undefined;
  const where = `${namespace}/${deployment}`;
  const after = await run.verify('verify', `Pods and rollout of ${where} after the change`, {
    read: async (): Promise<AfterChange> => {
      const [p, h] = await Promise.all([read.listPodSummaries({ namespace, deployment }), read.getRolloutHistory({ namespace, deployment })]);
      const live = livePods(p.pods);
      const counts = podCounts(p.pods);
      return {
        pods: counts.pods,
        ready: counts.readyPods,
        crashLooping: live.filter((x) => x.containers.some((c) => c.waitingReason === 'CrashLoopBackOff')).length,
        ...(h.currentRevision !== undefined ? { revision: h.currentRevision } : {}),
        memoryLimits: live.map((x) => x.memoryLimits?.[container] ?? 'none'),
        images: h.revisions.find((r) => r.revision === h.currentRevision)?.images ?? [],
      };
    },
    describe: (a) => `${a.ready}/${a.pods} pods ready, ${a.crashLooping} in CrashLoopBackOff, revision ${a.revision ?? '?'}`,
    effects: [
      {
        promised: `every pod of ${where} Ready, none in CrashLoopBackOff`,
        holds: (a) => a.pods > 0 && a.ready === a.pods && a.crashLooping === 0,
        found: (a) => `${a.ready} of ${a.pods} pods are Ready, ${a.crashLooping} in CrashLoopBackOff`,
      },
      ...(run.applied('raise-memory-limit')
        ? [
            {
              promised: `container ${container} running with limits.memory ${target} in every pod`,
              holds: (a: AfterChange) => a.pods > 0 && a.memoryLimits.every((l) => memoryBytes(l) === memoryBytes(target)),
              found: (a: AfterChange) => `the pods run with ${[...new Set(a.memoryLimits)].join(', ') || 'no pod'}`,
            },
          ]
        : []),
      ...(run.applied('rollback') && previous
        ? [
            {
              promised: `the images of revision ${previous.revision} (${previous.images.join(', ')})`,
              holds: (a: AfterChange) => a.images.join('\n') === previous.images.join('\n'),
              found: (a: AfterChange) => `revision ${a.revision ?? '?'} runs ${a.images.join(', ') || 'no image'}`,
            },
          ]
        : []),
    ],
    before: 'same read',
  });
  return after && { pods: after.pods, ready: after.ready, crashLooping: after.crashLooping, ...(after.revision !== undefined ? { revision: after.revision } : {}) };
}
