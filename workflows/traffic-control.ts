import type { z } from 'zod';
import type { IngressSummary } from '../activities/kubernetes-network';
import { previousAnnotationsAnnotation, type TrafficAction, type TrafficControlInput, type trafficControlInput } from '../common/inputs/traffic-control';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { planModeImpact, planOnly, RunbookRun, type ChangeOutcome } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read, write } from './activity-proxies';
import { failure, type FailureType } from '../common/failures';
import { catalog } from '../common/catalog';
import { describePlan, stateOf, stateText, wantedAnnotations, type AnnotationPlan, type IngressRef, type TrafficState } from './traffic-control-plans';

export type { TrafficState } from './traffic-control-plans';

export interface TrafficControlResult extends RunbookResultBase {
  namespace: string;
  ingress: string;
  action: TrafficAction;
  hosts: string[];
  before: TrafficState;
  /** Execute mode, after the change: ok when every annotation is what the plan said. */
  after?: TrafficState & { ok: boolean };
}

type TrafficInput = z.infer<typeof trafficControlInput>;

const fail = (message: string, type: FailureType = 'Refused') => failure(type, message);

async function readIngress(ref: IngressRef): Promise<IngressSummary> {
  const { namespace, ingress } = ref;
  const found = (await read.listIngresses({ namespace, name: ingress })).ingresses[0];
  if (!found) throw fail(`ingresses/${ingress} not found in namespace ${namespace}`, 'NotFound');
  return found;
}

/**
 * 流量控制 (`kubectl annotate ingress ... --overwrite`). What it does: catalog.trafficControl.
 * The record's entries go away as they are restored, so a second restore changes nothing.
 */
export async function trafficControl(raw: TrafficControlInput): Promise<TrafficControlResult> {
  const input = validateInput(catalog.trafficControl, raw);
  const { namespace, ingress, action, maintenanceService } = input;
  const where = `${namespace}/${ingress}`;
  const ref: IngressRef = { namespace, ingress };
  const run = await RunbookRun.begin(catalog.trafficControl, input, ['ingress', ...(action === 'maintenance-on' ? ['maintenance-service'] : []), action, 'verify']);
  await read.assertTargetsAllowed({
    namespaces: [namespace],
    names: [
      { name: ingress, what: 'ingress' },
      { name: maintenanceService, what: 'service' },
    ],
  });

  // Diagnosis (read-only).
  const found = await run.read(
    'ingress',
    `Ingress ${where}`,
    () => readIngress(ref),
    (i) => `hosts ${i.hosts.join(', ') || 'none'}; routes ${i.routes.join(', ') || 'none'}; addresses ${i.addresses.join(', ') || 'none'}; ${stateText(stateOf(ref, i))}`,
  );
  const before = stateOf(ref, found);
  if (action === 'maintenance-on') await readMaintenanceService(run, input);

  const { outcome, planned } = await annotateStep(run, input);
  const after = input.mode === 'execute' && (outcome === 'applied' || outcome === 'failed') ? await verifyTraffic(run, input, found, outcome, planned) : undefined;
  return reportTraffic(run, input, found, before, after, outcome);
}

/** The Ingress read again after the change; once applied, it promised the planned annotations (an unset one: absent). */
async function verifyTraffic(run: RunbookRun, input: TrafficInput, found: IngressSummary, outcome: ChangeOutcome, planned: AnnotationPlan | undefined): Promise<TrafficControlResult['after']> {
  const { namespace, ingress } = input;
  const ref: IngressRef = { namespace, ingress };
  const asPlanned = (live: Record<string, string>) => planned !== undefined && Object.entries(planned.after).every(([k, v]) => (live[k] ?? null) === v);
  // The record's JSON is long and says nothing to a reader: the annotations that steer traffic are named.
  const shown = (annotations: Record<string, string | null>) =>
    Object.entries(annotations)
      .filter(([k]) => k !== previousAnnotationsAnnotation)
      .map(([k, v]) => `${k} ${v ?? 'unset'}`)
      .join(', ');
  const checked = await run.verify('verify', `Annotations of ${namespace}/${ingress} after the change`, {
    read: async () => {
      const live = (await readIngress(ref)).annotations;
      return { ...stateOf(ref, { ...found, annotations: live }), ok: outcome === 'applied' && asPlanned(live), live };
    },
    describe: (s) => `${stateText(s)}; ${s.ok ? 'as planned' : 'NOT as planned'}`,
    effects:
      outcome === 'applied' && planned
        ? [
            {
              promised: `${namespace}/${ingress} with ${shown(planned.after) || 'its record updated'}`,
              holds: (s) => asPlanned(s.live),
              found: (s) => `it has ${shown(Object.fromEntries(Object.keys(planned.after).map((k) => [k, s.live[k] ?? null]))) || 'another record'}`,
            },
          ]
        : [],
    before: 'same read',
  });
  if (!checked) return undefined;
  const { live: _live, ...after } = checked;
  return after;
}

/** default-backend naming a missing Service sends every request to an error page, not to a maintenance page: refused. */
async function readMaintenanceService(run: RunbookRun, input: TrafficInput): Promise<void> {
  const { namespace, maintenanceService } = input;
  await run.read(
    'maintenance-service',
    `Service ${namespace}/${maintenanceService} (the maintenance page)`,
    async () => {
      const service = (await read.listServices({ namespace })).services.find((s) => s.name === maintenanceService);
      if (!service)
        throw fail(`maintenance mode refused: Service ${maintenanceService} does not exist in namespace ${namespace}; deploy the maintenance page first (or name it in maintenanceService)`);
      return service;
    },
    (s) => `ports ${s.ports.join(', ') || 'none'}; ${s.readyEndpoints} ready endpoints, ${s.notReadyEndpoints} not ready`,
  );
}

/** ⚠ the action's annotations (and the record) in one merge patch, planned by a server-side dry run. */
async function annotateStep(run: RunbookRun, input: TrafficInput): Promise<{ outcome: ChangeOutcome; planned?: AnnotationPlan }> {
  const { namespace, ingress, action, rps, maintenanceService } = input;
  const where = `${namespace}/${ingress}`;
  const ref: IngressRef = { namespace, ingress };
  const titles: Record<TrafficAction, string> = {
    'rate-limit': `Rate-limit ${where} to ${rps} requests per second per client`,
    'maintenance-on': `Switch ${where} to maintenance (default backend ${maintenanceService})`,
    'maintenance-off': `Switch maintenance off on ${where}`,
    restore: `Restore the traffic annotations of ${where}`,
  };
  let planned: AnnotationPlan | undefined;
  const outcome = await run.change<AnnotationPlan>({
    stepId: action,
    title: titles[action],
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      // Read again each time: right before apply, a change since approval changes the plan.
      const live = (await readIngress(ref)).annotations;
      const { set, remove, unchanged } = wantedAnnotations(ref, { action, rps, maintenanceService }, live);
      if (Object.keys(set).length === 0 && remove.length === 0) {
        planned = undefined;
        return { summary: unchanged, needed: false };
      }
      const dry = await read.setAnnotations({ namespace, kind: 'Ingress', name: ingress, set, remove, dryRun: true });
      planned = { set, remove, before: dry.before, after: dry.after };
      return { summary: `${where}: ${describePlan(planned)}`, details: planned, needed: dry.changed };
    },
    apply: async (approved) => {
      // The approved change, not one recomputed after the patch.
      const { set, remove } = approved.details!;
      const done = await write.setAnnotations({ namespace, kind: 'Ingress', name: ingress, set, remove });
      return done.changed ? describePlan({ set, remove, before: done.before, after: done.after }) : 'already set';
    },
  });
  return { outcome, ...(planned ? { planned } : {}) };
}

/** The incident report and the result: what the action does to traffic, before and after. */
async function reportTraffic(
  run: RunbookRun,
  input: TrafficInput,
  found: IngressSummary,
  before: TrafficState,
  after: TrafficControlResult['after'],
  outcome: ChangeOutcome,
): Promise<TrafficControlResult> {
  const { namespace, ingress, action, rps, maintenanceService } = input;
  const where = `${namespace}/${ingress}`;
  const planText = run.plannedStep(action)?.change.summary ?? 'no plan';
  const hosts = found.hosts.join(', ') || where;
  const effect: Record<TrafficAction, string> = {
    'rate-limit': `Requests to ${hosts} limited to ${rps} per second per client IP (excess answered 503)`,
    // ingress-nginx sends a request to the default-backend when the rule's Service has no ready endpoint (and, with custom-http-errors, for those errors).
    'maintenance-on': `Requests to ${hosts} are answered by Service ${maintenanceService} (the maintenance page) whenever the app's Service has no ready endpoint`,
    'maintenance-off': `The default backend of ${hosts} is back to what it was before maintenance`,
    restore: `The traffic annotations of ${hosts} are back to what they were before the first trafficControl change`,
  };
  // planText names the target already.
  const result = await run.finish(
    `${outcome === 'planned' ? `plan: ${planText}` : outcome === 'applied' ? `${action} applied: ${planText}` : `${action} ${outcome}: ${planText}`}${after ? `; now ${stateText(after)}` : ''}`,
    {
      impact:
        input.mode === 'plan'
          ? planModeImpact(`Now: ${stateText(before)}.`)
          : outcome === 'applied'
            ? `${effect[action]}. Before: ${stateText(before)}; after: ${after ? stateText(after) : 'not verified'}.`
            : `Nothing was changed (${outcome}). ${stateText(before)}.`,
      rootCause: `Not diagnosed by this runbook: ${input.startedBy} asked (${input.severity}) for ${action} on ${where}. Use postIncidentReview for the cause.`,
      solution: outcome === 'applied' ? `${planText}.` : outcome === 'planned' ? planOnly(planText) : `Not applied (${outcome}): ${planText}.`,
      prevention:
        action === 'rate-limit' || action === 'maintenance-on'
          ? `Temporary: run trafficControl with action ${action === 'rate-limit' ? 'restore' : 'maintenance-off'} once the incident is over (the previous values are recorded in ${previousAnnotationsAnnotation}); size capacity (emergencyScale, HPA bounds) and a standing rate limit for peak load.`
          : 'Review the incident (postIncidentReview) and keep a standing rate limit and a deployed maintenance page ready.',
    },
  );
  return { ...result, namespace, ingress, action, hosts: found.hosts, before, ...(after ? { after } : {}) };
}
