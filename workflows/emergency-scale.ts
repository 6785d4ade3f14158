import type { ContainerResources } from '../activities/kubernetes-rollouts';
import { previousSizeAnnotation, type EmergencyScaleInput } from '../common/inputs/emergency-scale';
import type { RunbookResultBase } from '../common/runbook';
import { containerOf } from './deployment-spec';
import { nothingChanged, planModeImpact, planOnly, RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import {
  amount,
  boundsText,
  kinds,
  replicasText,
  resourceChanges,
  resourceKeys,
  resourcesText,
  scalingHelpers,
  type Asked,
  type AutoscalerBounds,
  type ResourcesPlan,
  type Scaling,
} from './emergency-scale-plans';
import { raiseResourcesStep, restoreResourcesStep, restoreSizeStep, scaleStep } from './emergency-scale-steps';
import { read } from './activity-proxies';
import { failure, type FailureType } from '../common/failures';
import { catalog } from '../common/catalog';

export type { AutoscalerBounds };

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

/**
 * 紧急扩容 (`kubectl scale`, `kubectl set resources`). What it does: catalog.emergencyScale.
 * Never scales down: a restore is its own run with `restore: true`, from the recorded values only.
 */
export async function emergencyScale(raw: EmergencyScaleInput): Promise<EmergencyScaleResult> {
  const input = validateInput(catalog.emergencyScale, raw);
  const { namespace, deployment } = input;
  const where = `${namespace}/${deployment}`;
  const action = input.restore ? 'restore' : 'scale';
  const run = await RunbookRun.begin(catalog.emergencyScale, input, [
    'deployment',
    'pods',
    'autoscaler',
    ...(input.restore ? ['restore-size', 'restore-resources'] : ['scale', 'set-resources']),
    'verify',
  ]);
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
    type After = NonNullable<EmergencyScaleResult['after']> & { sizeOk: boolean; resourcesOk: boolean };
    const sizeText = (s: After) => `${s.readyPods} of ${s.pods} pods are Ready at ${replicasText(s.replicas)}${s.autoscaler ? ` (HPA ${s.autoscaler.name} ${boundsText(s.autoscaler)})` : ''}`;
    const checked = await run.verify('verify', `Replicas, pods, HPA and resources of ${where} after the change`, {
      read: async (): Promise<After> => {
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
        return { ...state, sizeOk, resourcesOk, ok: sizeOk && resourcesOk && !outcomes.includes('failed') };
      },
      describe: (s) =>
        `${s.readyPods}/${s.pods} pods ready, ${replicasText(s.replicas)}${s.autoscaler ? `, HPA ${s.autoscaler.name} ${boundsText(s.autoscaler)}` : ''}; ${container}: ${resourcesText(s.resources)}; ${s.ok ? 'as planned' : 'NOT as planned'}`,
      effects: [
        ...(sizeStep === 'applied'
          ? [
              {
                promised: `${where} ${aimedReplicas === undefined ? 'at its size' : action === 'scale' ? `at ${replicasText(aimedReplicas)} or more` : `back at ${replicasText(aimedReplicas)}`}, every pod Ready`,
                holds: (s: After) => s.sizeOk,
                found: sizeText,
              },
            ]
          : []),
        ...(resourcesStep === 'applied'
          ? [
              {
                promised: `container ${container} with the ${action === 'scale' ? 'raised' : 'recorded'} resources`,
                holds: (s: After) => s.resourcesOk,
                found: (s: After) => `it has ${resourcesText(s.resources)}`,
              },
            ]
          : []),
      ],
      // Each change already waited for its rollout; a little more for an HPA or a slow pod.
      withinSeconds: 30,
      before: 'same read',
    });
    if (checked) {
      const { sizeOk: _size, resourcesOk: _resources, ...state } = checked;
      after = state;
    }
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
    impact: input.mode === 'plan' ? planModeImpact(`Now: ${stateText(before)}.`) : `Before: ${stateText(before)}.${after ? ` After: ${stateText(after)}.` : ` ${nothingChanged}`}`,
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
