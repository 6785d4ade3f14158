/** trafficControl's record of previous values and its plan: pure functions over the Ingress's annotations. */
import type { IngressSummary } from '../activities/kubernetes-network';
import { defaultBackendAnnotation, previousAnnotationsAnnotation, rateLimitAnnotation, trafficAnnotations, type TrafficAction } from '../common/inputs/traffic-control';
import { stableJson } from '../common/stable-json';
import { failure } from '../common/failures';

/** The traffic annotations of the Ingress and what earlier runs recorded (previous values; null: unset). */
export interface TrafficState {
  limitRps?: string;
  defaultBackend?: string;
  recorded: Record<string, string | null>;
}

/** The annotation change a step makes: one merge patch, the record included. */
export interface AnnotationPlan {
  set: Record<string, string>;
  remove: string[];
  before: Record<string, string | null>;
  after: Record<string, string | null>;
}

const shown = (v: string | null | undefined) => (v === null || v === undefined ? 'unset' : v);

/** The Ingress a run acts on. */
export interface IngressRef {
  namespace: string;
  ingress: string;
}

/** The record on the Ingress; one this runbook did not write (or naming other annotations) is refused, never guessed at. */
function recordOf(ref: IngressRef, annotations: Record<string, string>): Record<string, string | null> {
  const { namespace, ingress } = ref;
  const text = annotations[previousAnnotationsAnnotation];
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const valid =
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.entries(value as Record<string, unknown>).every(([k, v]) => (trafficAnnotations as readonly string[]).includes(k) && (v === null || typeof v === 'string'));
  if (!valid)
    throw failure(
      'InvalidInput',
      `annotation ${previousAnnotationsAnnotation} of ingresses/${ingress} in namespace ${namespace} is not a record trafficControl wrote (${text.slice(0, 200)}); fix or remove it by hand`,
    );
  return value as Record<string, string | null>;
}

export const stateOf = (ref: IngressRef, i: IngressSummary): TrafficState => ({
  ...(i.annotations[rateLimitAnnotation] !== undefined ? { limitRps: i.annotations[rateLimitAnnotation] } : {}),
  ...(i.annotations[defaultBackendAnnotation] !== undefined ? { defaultBackend: i.annotations[defaultBackendAnnotation] } : {}),
  recorded: recordOf(ref, i.annotations),
});
export const stateText = (s: TrafficState) =>
  `limit-rps ${shown(s.limitRps)}, default-backend ${shown(s.defaultBackend)}; recorded: ${
    Object.keys(s.recorded).length
      ? Object.entries(s.recorded)
          .map(([k, v]) => `${k}=${shown(v)}`)
          .join(', ')
      : 'nothing'
  }`;

/** The annotations the action sets or removes, from the live ones, and how the record changes. */
export function wantedAnnotations(
  ref: IngressRef,
  input: { action: TrafficAction; rps: number; maintenanceService: string },
  live: Record<string, string>,
): { set: Record<string, string>; remove: string[]; unchanged: string } {
  const { action, rps, maintenanceService } = input;
  const where = `${ref.namespace}/${ref.ingress}`;
  const record = recordOf(ref, live);
  const next = { ...record };
  const set: Record<string, string> = {};
  const remove: string[] = [];
  const put = (key: string, value: string) => {
    if (live[key] === value) return;
    set[key] = value;
    // Only the first change is recorded: a restore goes back to before the emergency.
    if (!(key in next)) next[key] = live[key] ?? null;
  };
  const putBack = (key: string) => {
    if (!(key in record)) return;
    const previous = record[key];
    if (previous === null || previous === undefined) {
      if (key in live) remove.push(key);
    } else if (live[key] !== previous) set[key] = previous;
    delete next[key];
  };
  let unchanged: string;
  switch (action) {
    case 'rate-limit':
      put(rateLimitAnnotation, String(rps));
      unchanged = `${rateLimitAnnotation} of ${where} is already ${rps}`;
      break;
    case 'maintenance-on':
      put(defaultBackendAnnotation, maintenanceService);
      unchanged = `${defaultBackendAnnotation} of ${where} is already ${maintenanceService}`;
      break;
    case 'maintenance-off':
      putBack(defaultBackendAnnotation);
      unchanged = `no ${defaultBackendAnnotation} recorded in ${previousAnnotationsAnnotation} of ${where}: maintenance mode was not switched on by trafficControl (${defaultBackendAnnotation} is ${shown(live[defaultBackendAnnotation])})`;
      break;
    case 'restore':
      for (const key of Object.keys(record).sort()) putBack(key);
      unchanged = `nothing recorded in ${previousAnnotationsAnnotation} of ${where}: no trafficControl change to restore`;
      break;
  }
  const hadRecord = live[previousAnnotationsAnnotation] !== undefined;
  if (Object.keys(next).length === 0) {
    if (hadRecord) remove.push(previousAnnotationsAnnotation);
  } else if (stableJson(next) !== stableJson(record) || !hadRecord) set[previousAnnotationsAnnotation] = stableJson(next);
  return { set, remove, unchanged };
}

export function describePlan(p: AnnotationPlan): string {
  const keys = [...Object.keys(p.before)].filter((k) => k !== previousAnnotationsAnnotation && p.before[k] !== p.after[k]).sort();
  const record = p.remove.includes(previousAnnotationsAnnotation)
    ? `; ${previousAnnotationsAnnotation} removed (nothing left to restore)`
    : p.set[previousAnnotationsAnnotation] !== undefined
      ? `; previous values recorded in ${previousAnnotationsAnnotation}: ${p.set[previousAnnotationsAnnotation]}`
      : '';
  return `${keys.map((k) => `${k} ${shown(p.before[k])} -> ${shown(p.after[k])}`).join(', ') || 'no traffic annotation changes'}${record}`;
}
