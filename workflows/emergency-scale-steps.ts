// emergencyScale's ⚠ steps: scale up and raise resources; restore the recorded size and resources.
import { previousResourcesAnnotation, previousResourcesRecord, previousSizeAnnotation, previousSizeRecord, type PreviousResources, type PreviousSize } from '../common/inputs/emergency-scale';
import { rolesFrom } from '../common/runbook';
import { stableJson } from '../common/stable-json';
import {
  boundsText,
  cpuAndMemory,
  readyText,
  replicasText,
  resourceChanges,
  resourcesText,
  sizeText,
  type ResourcesPlan,
  type RestoreResourcesPlan,
  type RestoreSizePlan,
  type ScalePlan,
  type Scaling,
} from './emergency-scale-plans';
import { read, write } from './activity-proxies';

/** ⚠ scale up, raising the HPA with it; the size before the first scale-up is recorded. */
export async function scaleStep(s: Scaling): Promise<void> {
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
export async function raiseResourcesStep(s: Scaling): Promise<void> {
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
export async function restoreSizeStep(s: Scaling): Promise<void> {
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
export async function restoreResourcesStep(s: Scaling): Promise<void> {
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
