// What emergencyScale's steps share: the plan shapes and their texts, and the Scaling context
// (the Deployment, its pods and HPA read again, the record annotations parsed, the rollout waited for).
import type { ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import type { ContainerResources, RolloutStatus } from '../activities/kubernetes-rollouts';
import type { emergencyScaleInput, PreviousResources, PreviousSize } from '../common/inputs/emergency-scale';
import { cpuCores, memoryBytes } from '../common/quantity';
import type { FailureType } from '../common/failures';
import { deploymentOf, podCounts } from './deployment-spec';
import type { RunbookRun } from './kernel/runbook-run';
import { waitForRollout } from './rollout-wait';
import { read } from './activity-proxies';

export interface AutoscalerBounds {
  name: string;
  minReplicas: number;
  maxReplicas: number;
}

type Bounds = { minReplicas: number; maxReplicas: number };
type Kind = 'requests' | 'limits';
export const kinds: Kind[] = ['requests', 'limits'];
export const resourceKeys = ['cpu', 'memory'] as const;

export interface ScalePlan {
  from: number;
  to: number;
  autoscaler?: { name: string; from: Bounds; to: Bounds; changed: boolean };
  /** The size record to write; null when an earlier scale-up's record stays. */
  record: string | null;
}

export interface ResourcesPlan {
  container: string;
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
  from: ContainerResources;
  to: ContainerResources;
  record: string | null;
}

export interface RestoreSizePlan {
  from: number;
  to: number;
  autoscaler?: { name: string; from: Bounds; to: Bounds; changed: boolean } | { name: string; missing: true };
}

export interface RestoreResourcesPlan {
  containers: Array<{ container: string; requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } }>;
}

export const amount = (key: 'cpu' | 'memory', value: string | undefined) => (key === 'cpu' ? cpuCores(value) : memoryBytes(value));
export const boundsText = (b: Bounds) => `min ${b.minReplicas}, max ${b.maxReplicas}`;
export const replicasText = (n: number) => `${n} replica${n === 1 ? '' : 's'}`;
export const sizeText = (s: PreviousSize) => `${replicasText(s.replicas)}${s.autoscaler ? `, HPA ${s.autoscaler.name} ${boundsText(s.autoscaler)}` : ''}`;
export const resourcesText = (r: ContainerResources) => kinds.map((k) => `${k} ${resourceKeys.map((x) => `${x}=${r[k][x] ?? 'unset'}`).join(' ')}`).join(', ');

/** "requests.cpu 100m -> 2, limits.memory 256Mi -> 8Gi": only what differs. */
export function resourceChanges(from: ContainerResources, to: ContainerResources): string {
  return kinds.flatMap((k) => resourceKeys.filter((x) => from[k][x] !== to[k][x]).map((x) => `${k}.${x} ${from[k][x] ?? 'unset'} -> ${to[k][x] ?? 'unset'}`)).join(', ');
}

/** The cpu/memory part of a container's resources (the only keys the runbook sets or records). */
export function cpuAndMemory(r: ContainerResources): { requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } } {
  const out: { requests?: Record<string, string>; limits?: Record<string, string> } = {};
  for (const k of kinds) {
    const picked = Object.fromEntries(resourceKeys.filter((x) => r[k][x] !== undefined).map((x) => [x, r[k][x]!]));
    if (Object.keys(picked).length) out[k] = picked;
  }
  return out;
}

export const readyText = (r: RolloutStatus & { waitedMs: number }) => `${r.readyReplicas}/${r.replicas} ready, ${r.availableReplicas} available in ${Math.round(r.waitedMs / 1000)}s`;

type Input = z.infer<typeof emergencyScaleInput>;
export type Asked = { requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } };

/** What one run's steps share: the run, the Deployment and container it sizes, and helpers on them. */
export interface Scaling {
  run: RunbookRun;
  input: Input;
  namespace: string;
  deployment: string;
  where: string;
  container: string;
  asked: Asked;
  wantsResources: boolean;
  fail: (message: string, type?: FailureType) => ApplicationFailure;
  readDeployment: () => Promise<{ replicas: number; containers: Array<{ name: string; resources: ContainerResources }> }>;
  readPods: () => Promise<ReturnType<typeof podCounts>>;
  readAutoscaler: () => Promise<AutoscalerBounds | undefined>;
  parseRecord: <T>(schema: z.ZodType<T>, key: string, text: string) => T;
  existingRecord: (key: string, candidate: string) => Promise<string | null>;
  waitForReady: (done: string) => Promise<RolloutStatus & { waitedMs: number }>;
  /** What the restore steps found recorded (the verification compares with it). */
  restored: { size?: PreviousSize; resources?: PreviousResources[string] };
}

/** Reading the Deployment, its pods and its HPA; the record and rollout helpers the steps use. */
export function scalingHelpers(input: Input, fail: Scaling['fail']) {
  const { namespace, deployment } = input;
  const where = `${namespace}/${deployment}`;
  const readDeployment = async () => {
    const d = deploymentOf(await read.snapshotNamespaceConfig({ namespace }), deployment);
    return { replicas: d.replicas ?? 1, containers: d.containers.map((c) => ({ name: c.name, resources: { requests: { ...(c.requests ?? {}) }, limits: { ...(c.limits ?? {}) } } })) };
  };
  const readPods = async () => podCounts((await read.listPodSummaries({ namespace, deployment })).pods);
  const readAutoscaler = async (): Promise<AutoscalerBounds | undefined> => {
    const mine = (await read.listHorizontalPodAutoscalers({ namespace })).autoscalers.filter((a) => a.target === `Deployment/${deployment}`);
    if (mine.length > 1) throw fail(`${mine.length} HPAs target ${where} (${mine.map((a) => a.name).join(', ')}): they fight each other; leave one before scaling`);
    return mine[0] && { name: mine[0].name, minReplicas: mine[0].minReplicas, maxReplicas: mine[0].maxReplicas };
  };

  /** Parses a record annotation; one not written by this runbook is refused, never guessed at. */
  function parseRecord<T>(schema: z.ZodType<T>, key: string, text: string): T {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success)
      throw fail(
        `annotation ${key} of deployments.apps/${deployment} in namespace ${namespace} is not a record emergencyScale wrote (${text.slice(0, 200)}); fix or remove it by hand`,
        'InvalidInput',
      );
    return parsed.data;
  }

  /** Dry run of writing a record: tells whether one is there already (an earlier scale-up's, which is kept). */
  const existingRecord = async (key: string, candidate: string): Promise<string | null> =>
    (await read.setAnnotations({ namespace, kind: 'Deployment', name: deployment, set: { [key]: candidate }, dryRun: true })).before[key] ?? null;

  /** Waits until every replica is updated and available. */
  const waitForReady = (done: string) => waitForRollout({ namespace, deployment }, input.waitTimeoutSeconds, done);
  return { readDeployment, readPods, readAutoscaler, parseRecord, existingRecord, waitForReady };
}
