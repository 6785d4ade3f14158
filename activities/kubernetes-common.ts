import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  NetworkingV1Api,
  ObjectSerializer,
  PatchUtils,
  RbacAuthorizationV1Api,
  StorageV1Api,
  type KubeConfig,
} from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { throwIfCancelled } from './cancellation';
import { classified, failure, invalidInput } from './errors';
import { assertKubernetesName, assertNamespaceAllowed } from './guards';
import { parseQuantity } from '../common/quantity';

/** Our field manager for server-side apply and every write. */
export const fieldManager = 'runbook-automation';

/** What every Kubernetes activity file gets from createKubernetesActivities. */
export interface KubeScope {
  kube?: KubeConfig;
  allowedNamespaces: string[];
}

export interface KubeClients {
  kube: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  autoscaling: AutoscalingV2Api;
  networking: NetworkingV1Api;
  storage: StorageV1Api;
  rbac: RbacAuthorizationV1Api;
  custom: CustomObjectsApi;
  objects: KubernetesObjectApi;
}

const cache = new WeakMap<KubeConfig, KubeClients>();

/** API clients for the configured cluster (made once per KubeConfig); fails clearly when none is configured. */
export function clients(scope: KubeScope): KubeClients {
  const kube = scope.kube;
  if (!kube) throw failure('InvalidInput', 'Kubernetes is not configured (KUBECONFIG or KUBE_IN_CLUSTER)');
  let made = cache.get(kube);
  if (!made) {
    made = {
      kube,
      core: kube.makeApiClient(CoreV1Api),
      apps: kube.makeApiClient(AppsV1Api),
      autoscaling: kube.makeApiClient(AutoscalingV2Api),
      networking: kube.makeApiClient(NetworkingV1Api),
      storage: kube.makeApiClient(StorageV1Api),
      rbac: kube.makeApiClient(RbacAuthorizationV1Api),
      custom: kube.makeApiClient(CustomObjectsApi),
      objects: KubernetesObjectApi.makeApiClient(kube),
    };
    cache.set(kube, made);
  }
  return made;
}

/** Checks the namespace against the allowlist and every given name; returns the clients. */
export function guarded(scope: KubeScope, namespace: string, names: Record<string, string | undefined> = {}): KubeClients {
  if (typeof namespace !== 'string' || namespace === '') throw invalidInput('namespace is required');
  assertKubernetesName(namespace, 'namespace');
  assertNamespaceAllowed(namespace, { namespaces: scope.allowedNamespaces });
  for (const [what, name] of Object.entries(names)) {
    if (name === undefined) continue;
    if (typeof name !== 'string') throw invalidInput(`${what} must be a string`);
    assertKubernetesName(name, what);
  }
  return clients(scope);
}

/**
 * One API call, its errors classified; the message names the verb, the resource (and object) and
 * the namespace, e.g. "patch deployments/web in namespace short-drama-prod: ...".
 */
export function kcall<T>(verb: string, resource: string, namespace: string | undefined, call: () => Promise<T>): Promise<T> {
  return classified(`${verb} ${resource}${namespace ? ` in namespace ${namespace}` : ''}`, call, 'the Kubernetes API');
}

/** The whole body of a log read the kubelet could not serve (it answers 200 before it asks the runtime). */
const kubeletLogError = /^unable to retrieve container logs for (\S+)\s*$/;

/**
 * A pod's log through `read` (one API call, its errors classified). The kubelet answers 200 before it
 * asks the runtime, so a container the runtime no longer has comes back as the log itself: "unable to
 * retrieve container logs for containerd://…". Its status may lag one sync behind the runtime, so that
 * is read again, 1 s apart; after 3 tries it fails NotFound with a sentence, never returned as the log.
 *
 * For `previous` there is one case with a better answer: right after a crash the status names the
 * instance that just ended as the current one (state terminated) and, as the previous one, an older
 * instance the kubelet's garbage collector has already removed (it keeps one ended instance per
 * container, for about the 10 s until the next sync). `currentHasEnded` says whether the current
 * instance has ended; if so its log is the answer: the newest ended instance, what `previous` names
 * once the next instance starts.
 */
export async function readPodLog(what: string, read: (previous: boolean) => Promise<{ body: unknown }>, options: { previous: boolean; currentHasEnded?: () => Promise<boolean> }): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const { body } = await read(options.previous);
    const text = typeof body === 'string' ? body : String(body ?? '');
    const gone = kubeletLogError.exec(text);
    if (!gone) return text;
    if (options.previous && options.currentHasEnded && (await options.currentHasEnded())) return readPodLog(what, read, { previous: false });
    if (attempt === 3)
      throw failure('NotFound', `${what}: the kubelet could not read the logs of container ${gone[1]}: its runtime has already removed it (the kubelet keeps one ended instance of each container)`);
    await sleep(1000);
  }
}

/** Whether the named container of a pod (or its only container) has ended: its state is terminated. */
export async function containerHasEnded(c: KubeClients, namespace: string, pod: string, container: string | undefined): Promise<boolean> {
  const { body } = await kcall('get', `pods/${pod}`, namespace, () => c.core.readNamespacedPod(pod, namespace));
  const statuses = [...(body.status?.initContainerStatuses ?? []), ...(body.status?.containerStatuses ?? [])];
  const status = container ? statuses.find((s) => s.name === container) : statuses.length === 1 ? statuses[0] : undefined;
  return status?.state?.terminated !== undefined;
}

export const dryRunParam = (dryRun?: boolean): string | undefined => (dryRun ? 'All' : undefined);

export const mergePatch = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH } };
export const strategicPatch = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_STRATEGIC_MERGE_PATCH } };
export const jsonPatch = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_PATCH } };
export const applyPatch = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_APPLY_YAML } };

/** The wire (JSON) form of a client-node model object, e.g. wire(template, 'V1PodTemplateSpec'). */
export function wire(value: unknown, type: string): unknown {
  return JSON.parse(JSON.stringify(ObjectSerializer.serialize(value, type)));
}

/** JSON with keys sorted (undefined dropped): for comparing objects structurally. */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined && v !== null) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export { throwIfCancelled };

export interface PollOptions {
  /** Give up after this long (default 300 s). */
  timeoutSeconds?: number;
  /** Time between checks (default 1000 ms). */
  pollIntervalMs?: number;
}

/**
 * Polls `check` until it returns a value (not undefined), heartbeating each round, until the
 * deadline (then `onTimeout` is thrown). Cancellation interrupts the wait.
 */
export async function pollUntil<T>(what: string, options: PollOptions, check: () => Promise<T | undefined>, progress: () => unknown, onTimeout: () => Error): Promise<T> {
  const timeoutSeconds = options.timeoutSeconds ?? 300;
  const interval = options.pollIntervalMs ?? 1000;
  if (!(timeoutSeconds > 0 && timeoutSeconds <= 24 * 3600)) throw invalidInput(`${what}: timeoutSeconds must be between 1 and 86400`);
  if (!(interval >= 50 && interval <= 60_000)) throw invalidInput(`${what}: pollIntervalMs must be between 50 and 60000`);
  const ctx = Context.current();
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    throwIfCancelled(ctx);
    const result = await check();
    if (result !== undefined) return result;
    ctx.heartbeat(progress());
    if (Date.now() + interval > deadline) throw onTimeout();
    // Context.sleep rejects with CancelledFailure when the activity is cancelled.
    await ctx.sleep(interval);
  }
}

/** Quantities are parsed in common/quantity.ts (workflows use them too); re-exported for the activities. */
export { parseQuantity };

export function assertQuantity(text: string, what: string): void {
  if (parseQuantity(text) === undefined || (parseQuantity(text) ?? -1) < 0) throw invalidInput(`invalid ${what} "${text}": expected a Kubernetes quantity such as 500m, 2, 512Mi or 10Gi`);
}

/** Status code of a client-node 0.22 error (HttpError). */
export function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: number; response?: { statusCode?: number } };
  return e?.statusCode ?? e?.response?.statusCode;
}

/** Reads an object; undefined when it does not exist (404), other errors classified. */
export async function readOptional<T>(verb: string, resource: string, namespace: string | undefined, call: () => Promise<{ body: T }>): Promise<T | undefined> {
  try {
    return (await call()).body;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    return kcall(verb, resource, namespace, () => Promise.reject(err));
  }
}

/** The result of every mutating activity. */
export interface Change<T> {
  changed: boolean;
  dryRun: boolean;
  before: T;
  after: T;
  /** "no change" when nothing needed changing, else what was (or, on a dry run, would be) done. */
  message: string;
}

export function change<T>(before: T, after: T, dryRun: boolean | undefined, what: string): Change<T> {
  const changed = canonical(before) !== canonical(after);
  return { changed, dryRun: dryRun === true, before, after, message: changed ? `${dryRun ? 'would change' : 'changed'} ${what}` : 'no change' };
}

export function positiveInt(value: number | undefined, what: string, max: number): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 0 || value > max) throw invalidInput(`${what} must be an integer between 0 and ${max}`);
}

/** `matchLabels` and `matchExpressions` as a label selector string (`a=b,c in (d,e),!f`). */
export function labelSelectorText(selector: V1LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector?.matchExpressions ?? []) {
    if (e.operator === 'In' || e.operator === 'NotIn') parts.push(`${e.key} ${e.operator.toLowerCase()} (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

/**
 * The label selector of a Deployment's pods, from its own spec.selector: pods are found the way the
 * Deployment finds them, whatever their labels are called (app=, app.kubernetes.io/name=, ...).
 */
export async function deploymentPodSelector(c: KubeClients, namespace: string, deployment: string): Promise<string> {
  const { body } = await kcall('get', `deployments.apps/${deployment}`, namespace, () => c.apps.readNamespacedDeployment(deployment, namespace));
  return labelSelectorText(body.spec?.selector);
}

/** Which pods a read covers: a label selector, a Deployment's own selector, or (neither) the whole namespace. */
export interface PodScope {
  labelSelector?: string;
  /** The Deployment whose spec.selector picks the pods. */
  deployment?: string;
}

export async function podSelectorOf(c: KubeClients, namespace: string, scope: PodScope): Promise<string | undefined> {
  if (scope.labelSelector !== undefined && scope.deployment !== undefined) throw invalidInput('give labelSelector or deployment, not both');
  if (scope.deployment !== undefined) return deploymentPodSelector(c, namespace, scope.deployment);
  return scope.labelSelector;
}

/** The pod itself, or for a deployment its first Ready pod by name (as `kubectl logs|exec deployment/x`). */
export async function pickPod(c: KubeClients, namespace: string, target: { pod?: string; deployment?: string }): Promise<V1Pod> {
  if ((target.pod === undefined) === (target.deployment === undefined)) throw invalidInput('give exactly one of pod or deployment');
  if (target.pod) {
    const pod = target.pod;
    return (await kcall('get', `pods/${pod}`, namespace, () => c.core.readNamespacedPod(pod, namespace))).body;
  }
  const deployment = target.deployment!;
  const selector = await deploymentPodSelector(c, namespace, deployment);
  const { body } = await kcall('list', 'pods', namespace, () => c.core.listNamespacedPod(namespace, undefined, undefined, undefined, undefined, selector || undefined));
  const ready = body.items.filter((p) => !p.metadata?.deletionTimestamp && p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'));
  if (ready.length === 0) throw failure('NotFound', `deployments.apps/${deployment} in namespace ${namespace} has no Ready pod`);
  return ready.sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))[0]!;
}
