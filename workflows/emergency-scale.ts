import type { ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import type { ContainerResources, RolloutStatus } from '../activities/kubernetes-rollouts';
import {
  previousResourcesAnnotation,
  previousResourcesRecord,
  previousSizeAnnotation,
  previousSizeRecord,
  type EmergencyScaleInput,
  type emergencyScaleInput,
  type PreviousResources,
  type PreviousSize,
} from '../common/inputs/emergency-scale';
import { cpuCores, memoryBytes } from '../common/quantity';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { stableJson } from '../common/stable-json';
import { containerOf, deploymentOf, podCounts } from './deployment-spec';
import { planOnly, RunbookRun } from './kernel/runbook-run';
import { waitForRollout } from './rollout-wait';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { failure, type FailureType } from '../common/failures';
import { catalog } from '../common/catalog';

export interface AutoscalerBounds {
  name: string;
  minReplicas: number;
  maxReplicas: number;
}

/** The Deployment's size as read: replicas asked for, live pods, the HPA holding it, one container's resources. */
export interface SizeState {
  replicas: number;
  pods: number;
  readyPods: number;
  autoscaler?: AutoscalerBounds;
  container: string;
  resources: ContainerResources;
}

export interface EmergencyScaleResult extends RunbookResultBase {
  namespace: string;
  deployment: string;
  container: string;
  action: 'scale' | 'restore';
  /** The size asked for (scale) or the one recorded before the scale-up (restore, once read). */
  replicas?: number;
  before: SizeState;
  /** After the changes (execute mode); ok: the size aimed at, every pod ready, resources as planned. */
  after?: SizeState & { ok: boolean };
}

type Bounds = { minReplicas: number; maxReplicas: number };
type Kind = 'requests' | 'limits';
const kinds: Kind[] = ['requests', 'limits'];
const resourceKeys = ['cpu', 'memory'] as const;

interface ScalePlan {
  from: number;
  to: number;
  autoscaler?: { name: string; from: Bounds; to: Bounds; changed: boolean };
  /** The size record to write; null when an earlier scale-up's record stays. */
  record: string | null;
}

interface ResourcesPlan {
  container: string;
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
  from: ContainerResources;
  to: ContainerResources;
  record: string | null;
}

interface RestoreSizePlan {
  from: number;
  to: number;
  autoscaler?: { name: string; from: Bounds; to: Bounds; changed: boolean } | { name: string; missing: true };
}

interface RestoreResourcesPlan {
  containers: Array<{ container: string; requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } }>;
}

const amount = (key: 'cpu' | 'memory', value: string | undefined) => (key === 'cpu' ? cpuCores(value) : memoryBytes(value));
const boundsText = (b: Bounds) => `min ${b.minReplicas}, max ${b.maxReplicas}`;
const replicasText = (n: number) => `${n} replica${n === 1 ? '' : 's'}`;
const sizeText = (s: PreviousSize) => `${replicasText(s.replicas)}${s.autoscaler ? `, HPA ${s.autoscaler.name} ${boundsText(s.autoscaler)}` : ''}`;
const resourcesText = (r: ContainerResources) => kinds.map((k) => `${k} ${resourceKeys.map((x) => `${x}=${r[k][x] ?? 'unset'}`).join(' ')}`).join(', ');

/** "requests.cpu 100m -> 2, limits.memory 256Mi -> 8Gi": only what differs. */
function resourceChanges(from: ContainerResources, to: ContainerResources): string {
  return kinds.flatMap((k) => resourceKeys.filter((x) => from[k][x] !== to[k][x]).map((x) => `${k}.${x} ${from[k][x] ?? 'unset'} -> ${to[k][x] ?? 'unset'}`)).join(', ');
}

/** The cpu/memory part of a container's resources (the only keys the runbook sets or records). */
function cpuAndMemory(r: ContainerResources): { requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } } {
  const out: { requests?: Record<string, string>; limits?: Record<string, string> } = {};
  for (const k of kinds) {
    const picked = Object.fromEntries(resourceKeys.filter((x) => r[k][x] !== undefined).map((x) => [x, r[k][x]!]));
    if (Object.keys(picked).length) out[k] = picked;
  }
  return out;
}

const readyText = (r: RolloutStatus & { waitedMs: number }) => `${r.readyReplicas}/${r.replicas} ready, ${r.availableReplicas} available in ${Math.round(r.waitedMs / 1000)}s`;

type Input = z.infer<typeof emergencyScaleInput>;
type Asked = { requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } };

/** What one run's steps share: the run, the Deployment and container it sizes, and helpers on them. */
interface Scaling {
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
function scalingHelpers(input: Input, fail: Scaling['fail']) {
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

/** Refused before anyone is asked: scaling down, lowering or adding a resource value. */
function refuseUnsafeScale(s: Scaling, spec: { replicas: number }, current: { resources: ContainerResources }): void {
  const { input, where, container, asked, fail } = s;
  const to = input.replicas!;
  if (to < spec.replicas)
    throw fail(
      `emergency scale refused: ${where} runs ${replicasText(spec.replicas)} and ${to} would scale it down; emergencyScale only scales up (restore: true goes back to the size recorded before a scale-up)`,
    );
  const problems: string[] = [];
  for (const k of kinds) {
    for (const x of resourceKeys) {
      const value = asked[k]?.[x];
      if (value === undefined) continue;
      const now = current.resources[k][x];
      if (now === undefined)
        problems.push(`${k}.${x} is not set on container ${container}; emergencyScale only raises values already set${k === 'limits' ? ' (a new limit would lower "unlimited")' : ''}`);
      else if (amount(x, now) === undefined) problems.push(`${k}.${x} ${now} of container ${container} cannot be compared`);
      else if (amount(x, value)! < amount(x, now)!) problems.push(`${k}.${x} ${value} would lower the current ${now}`);
    }
  }
  for (const x of resourceKeys) {
    const request = asked.requests?.[x] ?? current.resources.requests[x];
    const limit = asked.limits?.[x] ?? current.resources.limits[x];
    if (request !== undefined && limit !== undefined && (amount(x, request) ?? 0) > (amount(x, limit) ?? Infinity)) problems.push(`requests.${x} ${request} would be above limits.${x} ${limit}`);
  }
  if (problems.length) throw fail(`resource change refused for ${where} container ${container}: ${problems.join('; ')}`);
}

/** ⚠ scale up, raising the HPA with it; the size before the first scale-up is recorded. */
async function scaleStep(s: Scaling): Promise<void> {
  const { run, input, namespace, deployment, where, parseRecord, existingRecord, waitForReady, readAutoscaler } = s;
  const to = input.replicas!;
  await run.change<ScalePlan>({
    stepId: 'scale',
    title: `Scale ${where} to ${replicasText(to)}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      const scaled = await read.scaleDeployment({ namespace, deployment, replicas: to, dryRun: true });
      const from = scaled.before.replicas;
      if (from > to) return { summary: `${where} already runs ${replicasText(from)}, more than ${to}; emergencyScale never scales down`, needed: false };
      // Read again: the bounds to raise are the live ones.
      const hpa = await readAutoscaler();
      let plannedHpa: ScalePlan['autoscaler'];
      if (hpa) {
        const dry = await read.setAutoscalerReplicas({ namespace, name: hpa.name, minReplicas: Math.max(hpa.minReplicas, to), maxReplicas: Math.max(hpa.maxReplicas, to), dryRun: true });
        plannedHpa = { name: hpa.name, from: dry.before, to: dry.after, changed: dry.changed };
      }
      const needed = scaled.changed || plannedHpa?.changed === true;
      const now: PreviousSize = { replicas: from, ...(plannedHpa ? { autoscaler: { name: plannedHpa.name, ...plannedHpa.from } } : {}) };
      const existing = needed ? await existingRecord(previousSizeAnnotation, stableJson(now)) : null;
      const kept = existing === null ? undefined : parseRecord(previousSizeRecord, previousSizeAnnotation, existing);
      const details: ScalePlan = { from, to, ...(plannedHpa ? { autoscaler: plannedHpa } : {}), record: kept || !needed ? null : stableJson(now) };
      const parts = [
        scaled.changed ? `scale ${where} from ${from} to ${replicasText(to)}` : `${where} already runs ${replicasText(to)}`,
        ...(plannedHpa
          ? [
              plannedHpa.changed
                ? `HPA ${plannedHpa.name} ${boundsText(plannedHpa.from)} -> ${boundsText(plannedHpa.to)} (below its bounds it would scale ${where} back)`
                : `HPA ${plannedHpa.name} already holds ${to} (${boundsText(plannedHpa.from)})`,
            ]
          : []),
      ];
      if (needed)
        parts.push(
          kept
            ? `the size before the first scale-up (${sizeText(kept)}) stays recorded in ${previousSizeAnnotation}`
            : `the size now (${sizeText(now)}) recorded in ${previousSizeAnnotation} for restore`,
        );
      return { summary: parts.join('; '), details, needed };
    },
    apply: async (approved) => {
      const d = approved.details!;
      // The record first: a scale-up whose previous size is lost could not be restored.
      if (d.record) await write.setAnnotations({ namespace, kind: 'Deployment', name: deployment, set: { [previousSizeAnnotation]: d.record } });
      // The HPA's bounds before the size, so it never sees the new size outside them.
      if (d.autoscaler?.changed) await write.setAutoscalerReplicas({ namespace, name: d.autoscaler.name, ...d.autoscaler.to });
      await write.scaleDeployment({ namespace, deployment, replicas: d.to });
      const ready = await waitForReady(`scaled ${where} to ${replicasText(d.to)}`);
      return `replicas ${d.from} -> ${d.to}${d.autoscaler?.changed ? `; HPA ${d.autoscaler.name} ${boundsText(d.autoscaler.from)} -> ${boundsText(d.autoscaler.to)}` : ''}; ${readyText(ready)}`;
    },
  });
}

/** ⚠ raise requests/limits (only up); the values before the first raise are recorded. */
async function raiseResourcesStep(s: Scaling): Promise<void> {
  const { run, namespace, deployment, where, container, asked, wantsResources, parseRecord, existingRecord, waitForReady } = s;
  await run.change<ResourcesPlan>({
    stepId: 'set-resources',
    title: `Raise the requests/limits of ${where} container ${container}`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      if (!wantsResources) return { summary: 'no requests or limits asked for', needed: false };
      const dry = await read.setContainerResources({ namespace, deployment, container, ...asked, dryRun: true });
      if (!dry.changed) return { summary: `container ${container} of ${where} already has ${resourcesText(dry.before)}`, needed: false };
      const now = cpuAndMemory(dry.before);
      const existing = await existingRecord(previousResourcesAnnotation, stableJson({ [container]: now }));
      const recorded: PreviousResources = existing === null ? {} : parseRecord(previousResourcesRecord, previousResourcesAnnotation, existing);
      const keep = recorded[container] !== undefined;
      const details: ResourcesPlan = { container, ...asked, from: dry.before, to: dry.after, record: keep ? null : stableJson({ ...recorded, [container]: now }) };
      return {
        summary: `resources of ${where} container ${container}: ${resourceChanges(dry.before, dry.after)} (a rolling update of its pods); ${keep ? `the values before the first raise stay recorded in ${previousResourcesAnnotation}` : `the values now recorded in ${previousResourcesAnnotation} for restore`}`,
        details,
        needed: true,
      };
    },
    apply: async (approved) => {
      const d = approved.details!;
      if (d.record) await write.setAnnotations({ namespace, kind: 'Deployment', name: deployment, set: { [previousResourcesAnnotation]: d.record } });
      const done = await write.setContainerResources({ namespace, deployment, container: d.container, ...(d.requests ? { requests: d.requests } : {}), ...(d.limits ? { limits: d.limits } : {}) });
      const ready = await waitForReady(`set the resources of ${where} container ${d.container}`);
      return `${resourceChanges(done.before, done.after) || 'already set'}; rollout complete: ${readyText(ready)}`;
    },
  });
}

/** ⚠ the size and HPA bounds recorded before the scale-up, back; then the record removed. */
async function restoreSizeStep(s: Scaling): Promise<void> {
  const { run, namespace, deployment, where, parseRecord, waitForReady, restored } = s;
  await run.change<RestoreSizePlan>({
    stepId: 'restore-size',
    title: `Restore ${where} to its size before the emergency scale-up`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      const text = (await read.setAnnotations({ namespace, kind: 'Deployment', name: deployment, remove: [previousSizeAnnotation], dryRun: true })).before[previousSizeAnnotation];
      if (!text) return { summary: `no size recorded in ${previousSizeAnnotation} of ${where}: no emergency scale-up to restore`, needed: false };
      const recorded = parseRecord(previousSizeRecord, previousSizeAnnotation, text);
      restored.size = recorded;
      const scaled = await read.scaleDeployment({ namespace, deployment, replicas: recorded.replicas, dryRun: true });
      let hpa: RestoreSizePlan['autoscaler'];
      if (recorded.autoscaler) {
        const { name, minReplicas, maxReplicas } = recorded.autoscaler;
        const live = (await read.listHorizontalPodAutoscalers({ namespace })).autoscalers.find((a) => a.name === name);
        if (!live) hpa = { name, missing: true };
        else {
          const dry = await read.setAutoscalerReplicas({ namespace, name, minReplicas, maxReplicas, dryRun: true });
          hpa = { name, from: dry.before, to: dry.after, changed: dry.changed };
        }
      }
      const details: RestoreSizePlan = { from: scaled.before.replicas, to: recorded.replicas, ...(hpa ? { autoscaler: hpa } : {}) };
      const hpaText = !hpa
        ? []
        : 'missing' in hpa
          ? [`HPA ${hpa.name} no longer exists (not restored)`]
          : [hpa.changed ? `HPA ${hpa.name} ${boundsText(hpa.from)} -> ${boundsText(hpa.to)}` : `HPA ${hpa.name} already ${boundsText(hpa.from)}`];
      return {
        summary: `restore ${where} to the size recorded before the emergency scale-up: ${[...hpaText, scaled.changed ? `replicas ${scaled.before.replicas} -> ${recorded.replicas}` : `replicas already ${recorded.replicas}`].join('; ')}; then remove ${previousSizeAnnotation}`,
        details,
        // The record alone still asks: removing it ends what the scale-up started.
        needed: true,
      };
    },
    apply: async (approved) => {
      const d = approved.details!;
      // The HPA's bounds first, so it does not hold the old floor against the smaller size.
      if (d.autoscaler && !('missing' in d.autoscaler) && d.autoscaler.changed) await write.setAutoscalerReplicas({ namespace, name: d.autoscaler.name, ...d.autoscaler.to });
      await write.scaleDeployment({ namespace, deployment, replicas: d.to });
      // Removed last: a restore that fails before this point can be run again.
      await write.setAnnotations({ namespace, kind: 'Deployment', name: deployment, remove: [previousSizeAnnotation] });
      const ready = await waitForReady(`scaled ${where} back to ${replicasText(d.to)}`);
      const hpa = d.autoscaler && !('missing' in d.autoscaler) && d.autoscaler.changed ? `HPA ${d.autoscaler.name} ${boundsText(d.autoscaler.from)} -> ${boundsText(d.autoscaler.to)}; ` : '';
      return `${hpa}replicas ${d.from} -> ${d.to}; ${readyText(ready)}; ${previousSizeAnnotation} removed`;
    },
  });
}

/** ⚠ the resources recorded before the raise, back; then the record removed. */
async function restoreResourcesStep(s: Scaling): Promise<void> {
  const { run, namespace, deployment, where, container, parseRecord, waitForReady, restored } = s;
  await run.change<RestoreResourcesPlan>({
    stepId: 'restore-resources',
    title: `Restore the requests/limits of ${where} from before the emergency raise`,
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      const text = (await read.setAnnotations({ namespace, kind: 'Deployment', name: deployment, remove: [previousResourcesAnnotation], dryRun: true })).before[previousResourcesAnnotation];
      if (!text) return { summary: `no resources recorded in ${previousResourcesAnnotation} of ${where}: no raise to restore`, needed: false };
      const recorded = parseRecord(previousResourcesRecord, previousResourcesAnnotation, text);
      restored.resources = recorded[container];
      const containers: RestoreResourcesPlan['containers'] = [];
      const lines: string[] = [];
      for (const [name, values] of Object.entries(recorded).sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (!values.requests && !values.limits) continue;
        const dry = await read.setContainerResources({ namespace, deployment, container: name, ...values, dryRun: true });
        containers.push({ container: name, ...values });
        lines.push(`container ${name}: ${dry.changed ? resourceChanges(dry.before, dry.after) : 'already as recorded'}`);
      }
      return {
        summary: `restore the resources of ${where} recorded before the emergency raise: ${lines.join('; ') || 'nothing recorded per container'}; then remove ${previousResourcesAnnotation}`,
        details: { containers } satisfies RestoreResourcesPlan,
        needed: true,
      };
    },
    apply: async (approved) => {
      const d = approved.details!;
      const lines: string[] = [];
      for (const c of d.containers) {
        const done = await write.setContainerResources({
          namespace,
          deployment,
          container: c.container,
          ...(c.requests ? { requests: c.requests } : {}),
          ...(c.limits ? { limits: c.limits } : {}),
        });
        lines.push(`container ${c.container}: ${resourceChanges(done.before, done.after) || 'already as recorded'}`);
      }
      await write.setAnnotations({ namespace, kind: 'Deployment', name: deployment, remove: [previousResourcesAnnotation] });
      const ready = await waitForReady(`restored the resources of ${where}`);
      return `${lines.join('; ')}; rollout complete: ${readyText(ready)}; ${previousResourcesAnnotation} removed`;
    },
  });
}

/**
 * 紧急扩容 (`kubectl scale --replicas=10`, `kubectl set resources`): reads the Deployment, its pods
 * and the HPA targeting it; ⚠ scales up (never down; an HPA is raised with it, minReplicas and if
 * needed maxReplicas to the new size, since below its bounds or its metrics it would scale the
 * Deployment straight back), ⚠ raises requests/limits (only up), each waiting until every pod is
 * ready, then verifies. The size, HPA bounds and resources from before the first scale-up are
 * recorded in annotations of the Deployment; a later run with `restore: true` puts exactly those
 * back (⚠ each, approved) and removes the records.
 */
export async function emergencyScale(raw: EmergencyScaleInput): Promise<EmergencyScaleResult> {
  const input = validateInput(catalog.emergencyScale, raw);
  const { namespace, deployment } = input;
  const where = `${namespace}/${deployment}`;
  const action = input.restore ? 'restore' : 'scale';
  const run = await RunbookRun.begin(catalog.emergencyScale, input, 6);
  await read.assertTargetsAllowed({ namespaces: [namespace], names: [{ name: deployment, what: 'deployment' }, ...(input.container ? [{ name: input.container, what: 'container' }] : [])] });
  const fail = (message: string, type: FailureType = 'Refused') => failure(type, message);
  const helpers = scalingHelpers(input, fail);
  const { readDeployment, readPods, readAutoscaler } = helpers;

  // Diagnosis (read-only).
  const spec = await run.read(
    'deployment',
    `Replicas and resources of ${where}`,
    readDeployment,
    (d) => `${replicasText(d.replicas)}; ${d.containers.map((c) => `${c.name}: ${resourcesText(c.resources)}`).join('; ')}`,
  );
  const pods = await run.read('pods', `Pods of ${where} (by its selector)`, readPods, (p) => `${p.readyPods}/${p.pods} pods ready`);
  const autoscaler = await run.read('autoscaler', `HorizontalPodAutoscaler targeting ${where}`, readAutoscaler, (a) =>
    a ? `HPA ${a.name} (${boundsText(a)}) decides the replicas of ${where}` : `no HPA targets ${where}`,
  );
  const container = input.container ?? spec.containers[0]?.name ?? '';
  const current = containerOf({ namespace, deployment }, spec.containers, container);
  const before: SizeState = { replicas: spec.replicas, ...pods, ...(autoscaler ? { autoscaler } : {}), container, resources: current.resources };

  const asked: Asked = { ...(input.requests ? { requests: input.requests } : {}), ...(input.limits ? { limits: input.limits } : {}) };
  const wantsResources = kinds.some((k) => resourceKeys.some((x) => asked[k]?.[x] !== undefined));
  const s: Scaling = { run, input, namespace, deployment, where, container, asked, wantsResources, fail, ...helpers, restored: {} };
  if (action === 'scale') {
    refuseUnsafeScale(s, spec, current);
    await scaleStep(s);
    await raiseResourcesStep(s);
  } else {
    await restoreSizeStep(s);
    await restoreResourcesStep(s);
  }
  const steps = action === 'scale' ? ['scale', 'set-resources'] : ['restore-size', 'restore-resources'];
  const { after, aimedReplicas } = await verifyAfter(s, action, steps);
  return reportScale(s, action, steps, before, after, aimedReplicas);
}

/** After the changes (execute mode, when a step touched the Deployment): the size aimed at, every pod ready, resources as planned. */
async function verifyAfter(s: Scaling, action: 'scale' | 'restore', steps: string[]) {
  const { run, input, where, container, readDeployment, readPods, readAutoscaler, restored } = s;
  const outcomes = steps.map((s) => run.outcomeOf(s));
  const touched = outcomes.some((o) => o === 'applied' || o === 'failed');
  const sizeStep = run.outcomeOf(steps[0]!);
  const resourcesStep = run.outcomeOf(steps[1]!);
  const plannedResources = run.plannedStep('set-resources')?.change.details as ResourcesPlan | undefined;
  const aimedReplicas = action === 'scale' ? input.replicas! : sizeStep === 'applied' ? restored.size?.replicas : undefined;

  let after: EmergencyScaleResult['after'];
  if (input.mode === 'execute' && touched) {
    after = await run.read(
      'verify',
      `Replicas, pods, HPA and resources of ${where} after the change`,
      async () => {
        const [d, p, a] = await Promise.all([readDeployment(), readPods(), readAutoscaler()]);
        const resources = d.containers.find((c) => c.name === container)?.resources ?? { requests: {}, limits: {} };
        const state: SizeState = { replicas: d.replicas, ...p, ...(a ? { autoscaler: a } : {}), container, resources };
        // The HPA stays in charge: after a scale-up it may go above the size asked for, after a restore anywhere within its bounds.
        const sizeAsAimed =
          aimedReplicas === undefined ||
          (action === 'scale'
            ? state.replicas >= aimedReplicas
            : state.autoscaler
              ? state.replicas >= state.autoscaler.minReplicas && state.replicas <= state.autoscaler.maxReplicas
              : state.replicas === aimedReplicas);
        const sizeOk = sizeAsAimed && state.readyPods === state.replicas && state.pods === state.replicas;
        const resourcesOk =
          resourcesStep !== 'applied' ||
          (action === 'scale'
            ? !plannedResources || resourceChanges(plannedResources.to, resources) === ''
            : kinds.every((k) => resourceKeys.every((x) => restored.resources?.[k]?.[x] === undefined || restored.resources[k]![x] === resources[k][x])));
        return { ...state, ok: sizeOk && resourcesOk && !outcomes.includes('failed') };
      },
      (s) =>
        `${s.readyPods}/${s.pods} pods ready, ${replicasText(s.replicas)}${s.autoscaler ? `, HPA ${s.autoscaler.name} ${boundsText(s.autoscaler)}` : ''}; ${container}: ${resourcesText(s.resources)}; ${s.ok ? 'as planned' : 'NOT as planned'}`,
    );
  }
  return { after, aimedReplicas };
}

/** The incident report and the result. */
async function reportScale(
  s: Scaling,
  action: 'scale' | 'restore',
  steps: string[],
  before: SizeState,
  after: EmergencyScaleResult['after'],
  aimedReplicas: number | undefined,
): Promise<EmergencyScaleResult> {
  const { run, input, namespace, deployment, where, container, asked, wantsResources } = s;
  const stateText = (s: SizeState) =>
    `${replicasText(s.replicas)} (${s.readyPods}/${s.pods} pods ready)${s.autoscaler ? `, HPA ${s.autoscaler.name} ${boundsText(s.autoscaler)}` : ''}, ${s.container}: ${resourcesText(s.resources)}`;
  const planLines = steps
    .flatMap((s) => run.plannedStep(s) ?? [])
    .filter((p) => p.change.needed)
    .map((p) => p.change.summary);
  const applied = run
    .timelineOf()
    .filter((e) => e.event === 'applied')
    .map((e) => `${e.stepId}: ${e.detail}`);
  const summary =
    input.mode === 'plan'
      ? `${where}: plan: ${planLines.join(' | ') || 'nothing to change'}`
      : `${where}: ${applied.join(' | ') || `nothing applied (${steps.map((s) => `${s} ${run.outcomeOf(s) ?? 'not run'}`).join(', ')})`}${after ? `; now ${after.readyPods}/${after.replicas} ready${after.ok ? '' : ' (NOT as planned)'}` : ''}`;
  const result = await run.finish(summary, {
    impact: input.mode === 'plan' ? `None from this run (plan mode). Now: ${stateText(before)}.` : `Before: ${stateText(before)}.${after ? ` After: ${stateText(after)}.` : ' Nothing was changed.'}`,
    rootCause:
      action === 'scale'
        ? `Not diagnosed by this runbook: ${input.startedBy} asked (${input.severity}) for emergency capacity on ${where} (${replicasText(input.replicas!)}${wantsResources ? `, ${kinds.flatMap((k) => resourceKeys.filter((x) => asked[k]?.[x]).map((x) => `${k}.${x}=${asked[k]![x]}`)).join(', ')}` : ''}). Use postIncidentReview for the cause.`
        : `The emergency is over: ${input.startedBy} asked to put ${where} back to what it ran before the emergency scale-up.`,
    solution:
      input.mode === 'plan'
        ? planOnly(planLines.join('; ') || 'nothing to change')
        : `${applied.join('; ') || 'Nothing applied'} (${steps.map((s) => `${s}: ${run.outcomeOf(s) ?? 'not run'}`).join(', ')}).`,
    prevention:
      action === 'scale'
        ? `Size the HPA's maxReplicas and the requests for peak load (dailyHealthCheck flags HPAs at max); load-test before campaigns; once the load is over, run emergencyScale with restore: true (the size before is recorded in ${previousSizeAnnotation}).`
        : 'Review why the capacity was short (postIncidentReview) and raise the HPA bounds or requests permanently if the load will come back.',
  });
  return {
    ...result,
    namespace,
    deployment,
    container,
    action,
    ...(aimedReplicas !== undefined ? { replicas: aimedReplicas } : {}),
    before,
    ...(after ? { after } : {}),
  };
}
