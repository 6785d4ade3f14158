import { Context } from '@temporalio/activity';
import type { V1Deployment, V1PodTemplateSpec, V1ReplicaSet } from '@kubernetes/client-node';
import { failure, invalidInput, refused } from './errors';
import {
  assertQuantity,
  canonical,
  change,
  dryRunParam,
  fieldManager,
  guarded,
  jsonPatch,
  kcall,
  labelSelectorText,
  mergePatch,
  pollUntil,
  positiveInt,
  strategicPatch,
  wire,
  type Change,
  type KubeClients,
  type KubeScope,
  type PollOptions,
} from './kubernetes-common';

const revisionAnnotation = 'deployment.kubernetes.io/revision';
const revisionHistoryAnnotation = 'deployment.kubernetes.io/revision-history';
const hashLabel = 'pod-template-hash';
export const restartedAtAnnotation = 'kubectl.kubernetes.io/restartedAt';
/** Deployment annotations `kubectl rollout undo` keeps from the Deployment instead of taking them from the ReplicaSet. */
const annotationsKeptOnRollback = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  revisionAnnotation,
  'deployment.kubernetes.io/revision-history',
  'deployment.kubernetes.io/desired-replicas',
  'deployment.kubernetes.io/max-replicas',
  'deprecated.deployment.rollback.to',
]);

export interface RevisionSummary {
  revision: number;
  replicaSet: string;
  images: string[];
  changeCause?: string;
  createdAt?: string;
  replicas: number;
  current: boolean;
}

export interface RolloutState {
  revision?: number;
  images: string[];
  replicas?: number;
}

function images(template: V1PodTemplateSpec | undefined): string[] {
  return (template?.spec?.containers ?? []).map((c) => `${c.name}=${c.image ?? ''}`);
}

/** The revision a Deployment or ReplicaSet carries in its annotation. */
export function revisionOf(o: { metadata?: { annotations?: Record<string, string> } }): number | undefined {
  const v = Number(o.metadata?.annotations?.[revisionAnnotation]);
  return Number.isInteger(v) && v > 0 ? v : undefined;
}

/**
 * The revision numbers a ReplicaSet had before its current one: rolling back to a ReplicaSet makes
 * the controller give it the next number and list the old ones here (comma-separated).
 */
function earlierRevisionsOf(rs: V1ReplicaSet): number[] {
  return (rs.metadata?.annotations?.[revisionHistoryAnnotation] ?? '')
    .split(',')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

function state(d: V1Deployment): RolloutState {
  const s: RolloutState = { images: images(d.spec?.template) };
  const revision = revisionOf(d);
  if (revision !== undefined) s.revision = revision;
  if (d.spec?.replicas !== undefined) s.replicas = d.spec.replicas;
  return s;
}

/** The pod template in its JSON form without the ReplicaSet's pod-template-hash label. */
function templateWithoutHash(template: V1PodTemplateSpec | undefined): Record<string, unknown> {
  const t = wire(template ?? {}, 'V1PodTemplateSpec') as { metadata?: { labels?: Record<string, string> } };
  if (t.metadata?.labels) {
    delete t.metadata.labels[hashLabel];
    if (Object.keys(t.metadata.labels).length === 0) delete t.metadata.labels;
  }
  return t as Record<string, unknown>;
}

async function ownedReplicaSets(c: KubeClients, namespace: string, deployment: V1Deployment): Promise<V1ReplicaSet[]> {
  const name = deployment.metadata?.name ?? '';
  const selector = labelSelectorText(deployment.spec?.selector);
  const result: V1ReplicaSet[] = [];
  let token: string | undefined;
  do {
    const { body } = await kcall('list', 'replicasets.apps', namespace, () => c.apps.listNamespacedReplicaSet(namespace, undefined, undefined, token, undefined, selector || undefined, 500));
    result.push(...body.items.filter((rs) => rs.metadata?.ownerReferences?.some((o) => o.controller && o.uid === deployment.metadata?.uid && o.name === name)));
    token = body.metadata?._continue || undefined;
  } while (token);
  return result;
}

/** Heartbeated by rollbackDeployment before it patches, so a retry rolls back to the same ReplicaSet. */
export interface RollbackProgress {
  rollbackTarget: { deployment: string; replicaSet: string; revision: number };
}

export interface RollbackInput {
  namespace: string;
  deployment: string;
  /** Revision to go back to; absent or 0: the previous one (as `kubectl rollout undo`). */
  toRevision?: number;
  dryRun?: boolean;
}

export interface SetResourcesInput {
  namespace: string;
  deployment: string;
  container: string;
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
  dryRun?: boolean;
}

export interface ContainerResources {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

export interface RolloutStatus {
  deployment: string;
  generation: number;
  observedGeneration: number;
  replicas: number;
  updatedReplicas: number;
  readyReplicas: number;
  availableReplicas: number;
  complete: boolean;
  revision?: number;
}

/** How a Deployment can be restarted without two servers on one volume. */
export interface RestartMethod {
  /** rollout: `kubectl rollout restart`; scale-to-zero: replicas to 0, wait until no pod exists, back. */
  method: 'rollout' | 'scale-to-zero';
  strategy: string;
  replicas: number;
  /** Claims the pods mount that only one node may write (ReadWriteOnce, ReadWriteOncePod). */
  singleWriterClaims: string[];
  reason: string;
}

const singleWriterModes = ['ReadWriteOnce', 'ReadWriteOncePod'];

/** The Deployment's claims whose access modes allow one writer only. */
async function singleWriterClaimsOf(c: KubeClients, namespace: string, d: V1Deployment): Promise<string[]> {
  const claims = (d.spec?.template?.spec?.volumes ?? []).map((v) => v.persistentVolumeClaim?.claimName).filter((n): n is string => Boolean(n));
  const single: string[] = [];
  for (const claim of claims) {
    const pvc = (await kcall('get', `persistentvolumeclaims/${claim}`, namespace, () => c.core.readNamespacedPersistentVolumeClaim(claim, namespace))).body;
    if ((pvc.spec?.accessModes ?? []).some((m) => singleWriterModes.includes(m))) single.push(claim);
  }
  return single;
}

/**
 * RollingUpdate starts the new pod before the old one is gone (whatever maxSurge says, a
 * terminating pod still runs): with a single-writer volume that is two servers on one volume.
 */
async function restartMethodOf(c: KubeClients, namespace: string, d: V1Deployment): Promise<RestartMethod> {
  const strategy = d.spec?.strategy?.type ?? 'RollingUpdate';
  const singleWriterClaims = await singleWriterClaimsOf(c, namespace, d);
  const replicas = d.spec?.replicas ?? 1;
  if (strategy !== 'RollingUpdate' || singleWriterClaims.length === 0)
    return { method: 'rollout', strategy, replicas, singleWriterClaims, reason: strategy === 'Recreate' ? 'strategy Recreate stops the old pods first' : 'no single-writer volume' };
  return {
    method: 'scale-to-zero',
    strategy,
    replicas,
    singleWriterClaims,
    reason: `its pods mount ${claimList(singleWriterClaims)} (ReadWriteOnce) and strategy RollingUpdate would start the new pod before the old one stops`,
  };
}

/**
 * Refuses a change after which two pods of the Deployment would mount one single-writer volume at
 * once: a new pod template rolled out with RollingUpdate (restart, rollback, new resources), or
 * more than one replica. `what` names the change, as the refusal's first words.
 */
async function assertOneWriter(c: KubeClients, namespace: string, d: V1Deployment, what: string, change: 'pod template' | { replicas: number }): Promise<void> {
  const name = `deployments.apps/${d.metadata?.name ?? ''}`;
  if (change === 'pod template') {
    const how = await restartMethodOf(c, namespace, d);
    if (how.method === 'scale-to-zero' && how.replicas > 0) throw refused(`${what} of ${name} in namespace ${namespace} is refused: ${how.reason}; set strategy Recreate, or scale it to 0 first`);
    return;
  }
  if (change.replicas <= 1) return;
  const claims = await singleWriterClaimsOf(c, namespace, d);
  if (claims.length > 0)
    throw refused(`${what} of ${name} in namespace ${namespace} to ${change.replicas} replicas is refused: its pods mount ${claimList(claims)} (ReadWriteOnce), which only one server may write`);
}

const claimList = (claims: string[]) => claims.map((n) => `persistentvolumeclaims/${n}`).join(', ');

function rolloutStatus(d: V1Deployment): RolloutStatus {
  const wanted = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  const s: RolloutStatus = {
    deployment: d.metadata?.name ?? '',
    generation: d.metadata?.generation ?? 0,
    observedGeneration: st.observedGeneration ?? 0,
    replicas: st.replicas ?? 0,
    updatedReplicas: st.updatedReplicas ?? 0,
    readyReplicas: st.readyReplicas ?? 0,
    availableReplicas: st.availableReplicas ?? 0,
    complete: false,
  };
  const revision = revisionOf(d);
  if (revision !== undefined) s.revision = revision;
  // The conditions `kubectl rollout status` waits for, plus no pod beyond the wanted count: after a
  // scale-down the surplus pods still count until they are gone, and a report must not show them.
  s.complete = s.observedGeneration >= s.generation && s.updatedReplicas >= wanted && s.replicas <= s.updatedReplicas && s.replicas <= wanted && s.availableReplicas >= s.updatedReplicas;
  return s;
}

export function createKubernetesRolloutActivities(scope: KubeScope) {
  async function readDeployment(c: KubeClients, namespace: string, name: string): Promise<V1Deployment> {
    return (await kcall('get', `deployments.apps/${name}`, namespace, () => c.apps.readNamespacedDeployment(name, namespace))).body;
  }

  return {
    /** Rollout history from the Deployment's ReplicaSets, oldest revision first. */
    async getRolloutHistory(input: { namespace: string; deployment: string }): Promise<{ deployment: string; currentRevision?: number; revisions: RevisionSummary[] }> {
      const { namespace, deployment } = input;
      const c = guarded(scope, namespace, { deployment });
      const d = await readDeployment(c, namespace, deployment);
      const current = revisionOf(d);
      const revisions = (await ownedReplicaSets(c, namespace, d))
        .map((rs): RevisionSummary => {
          const r: RevisionSummary = {
            revision: revisionOf(rs) ?? 0,
            replicaSet: rs.metadata?.name ?? '',
            images: images(rs.spec?.template),
            replicas: rs.status?.replicas ?? 0,
            current: revisionOf(rs) === current,
          };
          const cause = rs.metadata?.annotations?.['kubernetes.io/change-cause'];
          if (cause) r.changeCause = cause;
          if (rs.metadata?.creationTimestamp) r.createdAt = new Date(rs.metadata.creationTimestamp).toISOString();
          return r;
        })
        .sort((a, b) => a.revision - b.revision);
      return { deployment, ...(current !== undefined ? { currentRevision: current } : {}), revisions };
    },

    /**
     * `kubectl rollout undo`: the chosen revision's pod template (minus pod-template-hash) into the
     * Deployment, and the ReplicaSet's annotations. Already on that template: no change.
     */
    async rollbackDeployment(input: RollbackInput): Promise<Change<RolloutState> & { toRevision: number }> {
      const { namespace, deployment, dryRun } = input;
      const c = guarded(scope, namespace, { deployment });
      positiveInt(input.toRevision, 'toRevision', Number.MAX_SAFE_INTEGER);
      const d = await readDeployment(c, namespace, deployment);
      if (d.spec?.paused) throw invalidInput(`deployments.apps/${deployment} in namespace ${namespace} is paused; resume it before rolling back`);
      const current = revisionOf(d) ?? 0;
      const sets = (await ownedReplicaSets(c, namespace, d)).filter((rs) => revisionOf(rs) !== undefined);
      // A retried attempt goes to the ReplicaSet the first attempt chose (heartbeated before the
      // patch): resolving "previous" again after a successful patch would flip back.
      const ctx = Context.current();
      const resumed = (ctx.info.heartbeatDetails as RollbackProgress | undefined)?.rollbackTarget;
      let target: V1ReplicaSet | undefined = resumed?.deployment === deployment ? sets.find((rs) => rs.metadata?.name === resumed.replicaSet) : undefined;
      if (target) {
        // found: the first attempt's choice
      } else if (input.toRevision) {
        // Not by its number now, then by an earlier one: a retry whose first attempt rolled back
        // (and lost its heartbeat with the worker) finds the ReplicaSet renumbered, already current.
        target = sets.find((rs) => revisionOf(rs) === input.toRevision) ?? sets.find((rs) => earlierRevisionsOf(rs).includes(input.toRevision!));
        if (!target)
          throw failure(
            'NotFound',
            `deployments.apps/${deployment} in namespace ${namespace} has no revision ${input.toRevision} (revisions: ${
              sets
                .map((rs) => revisionOf(rs))
                .sort((a, b) => a! - b!)
                .join(', ') || 'none'
            })`,
          );
      } else {
        target = sets.filter((rs) => revisionOf(rs)! < current).sort((a, b) => revisionOf(b)! - revisionOf(a)!)[0];
        if (!target) throw failure('NotFound', `deployments.apps/${deployment} in namespace ${namespace} has no previous revision to roll back to (current ${current})`);
      }
      const toRevision = revisionOf(target)!;
      const template = templateWithoutHash(target.spec?.template);
      const before = state(d);
      if (canonical(template) === canonical(templateWithoutHash(d.spec?.template))) {
        return { ...change(before, before, dryRun, ''), toRevision, message: `no change (current template already matches revision ${toRevision})` };
      }
      await assertOneWriter(c, namespace, d, 'a rollback', 'pod template');
      const annotations: Record<string, string> = {};
      for (const [k, v] of Object.entries(d.metadata?.annotations ?? {})) if (annotationsKeptOnRollback.has(k)) annotations[k] = v;
      for (const [k, v] of Object.entries(target.metadata?.annotations ?? {})) if (!annotationsKeptOnRollback.has(k)) annotations[k] = v;
      if (!dryRun) ctx.heartbeat({ rollbackTarget: { deployment, replicaSet: target.metadata?.name ?? '', revision: toRevision } } satisfies RollbackProgress);
      const patch = [
        { op: 'replace', path: '/spec/template', value: template },
        { op: 'replace', path: '/metadata/annotations', value: annotations },
      ];
      const { body: after } = await kcall('patch', `deployments.apps/${deployment}`, namespace, () =>
        c.apps.patchNamespacedDeployment(deployment, namespace, patch, undefined, dryRunParam(dryRun), fieldManager, undefined, undefined, jsonPatch),
      );
      const afterState = state(after);
      // The controller assigns the new revision number after the patch: report the target's images.
      return { ...change(before, { ...afterState, images: images(after.spec?.template) }, dryRun, `deployments.apps/${deployment} rolled back to revision ${toRevision}`), toRevision, changed: true };
    },

    /** `kubectl rollout restart` with the caller's restartedAt value: a retry with the same value changes nothing. */
    async restartRollout(input: { namespace: string; deployment: string; restartedAt: string; dryRun?: boolean }): Promise<Change<{ restartedAt?: string; revision?: number }>> {
      const { namespace, deployment, restartedAt, dryRun } = input;
      const c = guarded(scope, namespace, { deployment });
      if (typeof restartedAt !== 'string' || restartedAt === '' || restartedAt.length > 64 || Number.isNaN(new Date(restartedAt).getTime())) {
        throw invalidInput('restartedAt must be an ISO time chosen by the caller (e.g. the workflow start time), so a retry does not restart twice');
      }
      const d = await readDeployment(c, namespace, deployment);
      await assertOneWriter(c, namespace, d, 'a rolling restart', 'pod template');
      const previous = d.spec?.template?.metadata?.annotations?.[restartedAtAnnotation];
      const before = { ...(previous ? { restartedAt: previous } : {}), ...(revisionOf(d) ? { revision: revisionOf(d) } : {}) };
      if (previous === restartedAt) return change(before, before, dryRun, '');
      const { body: after } = await kcall('patch', `deployments.apps/${deployment}`, namespace, () =>
        c.apps.patchNamespacedDeployment(
          deployment,
          namespace,
          { spec: { template: { metadata: { annotations: { [restartedAtAnnotation]: restartedAt } } } } },
          undefined,
          dryRunParam(dryRun),
          fieldManager,
          undefined,
          undefined,
          strategicPatch,
        ),
      );
      return change(
        before,
        { restartedAt: after.spec?.template?.metadata?.annotations?.[restartedAtAnnotation], ...(revisionOf(after) ? { revision: revisionOf(after) } : {}) },
        dryRun,
        `deployments.apps/${deployment} restartedAt=${restartedAt}`,
      );
    },

    /** Whether a restart can roll, or must scale to 0 first (a single-writer volume under RollingUpdate). Changes nothing. */
    async restartMethod(input: { namespace: string; deployment: string }): Promise<RestartMethod> {
      const { namespace, deployment } = input;
      const c = guarded(scope, namespace, { deployment });
      return restartMethodOf(c, namespace, await readDeployment(c, namespace, deployment));
    },

    /** Waits until no pod of the Deployment exists, terminating ones included (they may still write their volume). */
    async waitForNoPods(input: { namespace: string; deployment: string } & PollOptions): Promise<{ waitedMs: number }> {
      const { namespace, deployment } = input;
      const c = guarded(scope, namespace, { deployment });
      const selector = labelSelectorText((await readDeployment(c, namespace, deployment)).spec?.selector);
      if (!selector) throw invalidInput(`deployments.apps/${deployment} in namespace ${namespace} has no pod selector`);
      const started = Date.now();
      let left: string[] = [];
      await pollUntil(
        `wait until no pod of deployments.apps/${deployment} exists`,
        input,
        async () => {
          const { body } = await kcall('list', 'pods', namespace, () => c.core.listNamespacedPod(namespace, undefined, undefined, undefined, undefined, selector));
          left = body.items.map((p) => p.metadata?.name ?? '');
          return left.length === 0 ? true : undefined;
        },
        () => ({ left, elapsedMs: Date.now() - started }),
        () => failure('RolloutIncomplete', `pods of deployments.apps/${deployment} in namespace ${namespace} still exist after ${input.timeoutSeconds ?? 300}s: ${left.join(', ')}`),
      );
      return { waitedMs: Date.now() - started };
    },

    /** Waits until the rollout is complete (as `kubectl rollout status`), heartbeating; fails at the deadline or on ProgressDeadlineExceeded. */
    async waitForRolloutComplete(input: { namespace: string; deployment: string } & PollOptions): Promise<RolloutStatus & { waitedMs: number }> {
      const { namespace, deployment } = input;
      const c = guarded(scope, namespace, { deployment });
      const started = Date.now();
      let last: RolloutStatus | undefined;
      const done = await pollUntil(
        `wait for deployments.apps/${deployment}`,
        input,
        async () => {
          const d = await readDeployment(c, namespace, deployment);
          last = rolloutStatus(d);
          const progressing = d.status?.conditions?.find((x) => x.type === 'Progressing');
          if (!last.complete && progressing?.reason === 'ProgressDeadlineExceeded') {
            throw failure('ProgressDeadlineExceeded', `deployments.apps/${deployment} in namespace ${namespace} exceeded its progress deadline: ${progressing.message ?? ''}`);
          }
          return last.complete ? last : undefined;
        },
        () => ({ ...last, elapsedMs: Date.now() - started }),
        () =>
          failure(
            'Transient',
            `deployments.apps/${deployment} in namespace ${namespace}: rollout not complete after ${input.timeoutSeconds ?? 300}s (${last?.updatedReplicas ?? 0} updated, ${last?.availableReplicas ?? 0} available of ${last?.replicas ?? 0})`,
          ),
      );
      return { ...done, waitedMs: Date.now() - started };
    },

    /** Sets a Deployment's replicas through the scale subresource. */
    async scaleDeployment(input: { namespace: string; deployment: string; replicas: number; dryRun?: boolean }): Promise<Change<{ replicas: number }>> {
      const { namespace, deployment, replicas, dryRun } = input;
      const c = guarded(scope, namespace, { deployment });
      if (replicas === undefined) throw invalidInput('replicas is required');
      positiveInt(replicas, 'replicas', 1000);
      const { body: scale } = await kcall('get', `deployments.apps/${deployment}/scale`, namespace, () => c.apps.readNamespacedDeploymentScale(deployment, namespace));
      const before = { replicas: scale.spec?.replicas ?? 0 };
      if (before.replicas === replicas) return change(before, before, dryRun, '');
      if (replicas > before.replicas) await assertOneWriter(c, namespace, await readDeployment(c, namespace, deployment), 'scaling', { replicas });
      const { body: after } = await kcall('patch', `deployments.apps/${deployment}/scale`, namespace, () =>
        c.apps.patchNamespacedDeploymentScale(deployment, namespace, { spec: { replicas } }, undefined, dryRunParam(dryRun), fieldManager, undefined, undefined, mergePatch),
      );
      return change(before, { replicas: after.spec?.replicas ?? 0 }, dryRun, `deployments.apps/${deployment} replicas ${before.replicas} -> ${replicas}`);
    },

    /** `kubectl set resources`: one container's requests/limits (only the given ones change). */
    async setContainerResources(input: SetResourcesInput): Promise<Change<ContainerResources>> {
      const { namespace, deployment, container, dryRun } = input;
      const c = guarded(scope, namespace, { deployment, container });
      const requests = input.requests ?? {};
      const limits = input.limits ?? {};
      for (const [kind, values] of [
        ['requests', requests],
        ['limits', limits],
      ] as const) {
        for (const [key, value] of Object.entries(values)) {
          if (key !== 'cpu' && key !== 'memory') throw invalidInput(`${kind}.${key}: only cpu and memory can be set`);
          if (value !== undefined) assertQuantity(value, `${kind}.${key}`);
        }
      }
      if (Object.keys(requests).length + Object.keys(limits).length === 0) throw invalidInput('give at least one of requests or limits');
      const d = await readDeployment(c, namespace, deployment);
      const found = (deployment_: V1Deployment) => deployment_.spec?.template?.spec?.containers.find((x) => x.name === container);
      const current = found(d);
      if (!current)
        throw failure(
          'NotFound',
          `deployments.apps/${deployment} in namespace ${namespace} has no container ${container} (containers: ${(d.spec?.template?.spec?.containers ?? []).map((x) => x.name).join(', ')})`,
        );
      const resourcesOf = (x: typeof current | undefined): ContainerResources => ({ requests: { ...(x?.resources?.requests ?? {}) }, limits: { ...(x?.resources?.limits ?? {}) } });
      const before = resourcesOf(current);
      const patch = {
        spec: { template: { spec: { containers: [{ name: container, resources: { ...(Object.keys(requests).length ? { requests } : {}), ...(Object.keys(limits).length ? { limits } : {}) } }] } } },
      };
      // A dry run first: the server normalises quantities (1024Mi is 1Gi), so compare what it would store.
      const { body: preview } = await kcall('patch', `deployments.apps/${deployment}`, namespace, () =>
        c.apps.patchNamespacedDeployment(deployment, namespace, patch, undefined, 'All', fieldManager, undefined, undefined, strategicPatch),
      );
      const wanted = resourcesOf(found(preview));
      if (canonical(wanted) !== canonical(before)) await assertOneWriter(c, namespace, d, 'new resources', 'pod template');
      if (canonical(wanted) === canonical(before) || dryRun) return change(before, wanted, dryRun, `deployments.apps/${deployment} container ${container} resources`);
      const { body: after } = await kcall('patch', `deployments.apps/${deployment}`, namespace, () =>
        c.apps.patchNamespacedDeployment(deployment, namespace, patch, undefined, undefined, fieldManager, undefined, undefined, strategicPatch),
      );
      return change(before, resourcesOf(found(after)), dryRun, `deployments.apps/${deployment} container ${container} resources`);
    },
  };
}
