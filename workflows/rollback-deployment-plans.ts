import type { Activities } from '../activities';
import type { PodSummary } from '../activities/kubernetes-pods';
import type { RevisionSummary } from '../activities/kubernetes-rollouts';
import type { z } from 'zod';
import type { rollbackDeploymentInput } from '../common/inputs/rollback-deployment';
import { livePods, podCounts, previousRevision } from './deployment-spec';
import { failure } from '../common/failures';

/** rollbackDeployment's pure parts: what it reads the history and pods as, and how it says them. */

export interface RevisionInfo extends RevisionSummary {
  /** Seconds since the revision's ReplicaSet was created, at the workflow's time of reading. */
  ageSeconds?: number;
}

/** What the rollback step resolved from the history: from the current revision to the target one. */
export interface RollbackTarget {
  fromRevision?: number;
  fromImages: string[];
  toRevision: number;
  toReplicaSet: string;
  toImages: string[];
}

export interface Availability {
  revision?: number;
  /** The current revision's ReplicaSet and images. */
  replicaSet?: string;
  images: string[];
  /** Live (not terminating) pods of the current ReplicaSet, and how many are ready. */
  pods: number;
  readyPods: number;
  /** Live pods still on another revision. */
  otherPods: number;
}

export type History = Awaited<ReturnType<Activities['getRolloutHistory']>>;
/** The history as the diagnosis read it, each revision with its age. */
export type AgedHistory = Omit<History, 'revisions'> & { revisions: RevisionInfo[] };

export function age(seconds: number | undefined): string {
  if (seconds === undefined) return 'age unknown';
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86_400)}d ago`;
}

export const imagesText = (images: string[]) => images.join(', ') || 'no containers';

/** From the history's current revision to `to`. */
export function rollbackTarget(h: { revisions: RevisionSummary[]; currentRevision?: number }, to: RevisionSummary): RollbackTarget {
  const from = h.revisions.find((r) => r.revision === h.currentRevision);
  return { ...(h.currentRevision !== undefined ? { fromRevision: h.currentRevision } : {}), fromImages: from?.images ?? [], toRevision: to.revision, toReplicaSet: to.replicaSet, toImages: to.images };
}

export type Input = z.infer<typeof rollbackDeploymentInput>;

/** The revision to go back to: the asked one (refused when not in the history), else the one before the current. */
export function resolveTarget(input: Input, h: History): RevisionSummary | undefined {
  const { namespace, deployment, toRevision } = input;
  if (toRevision !== undefined) {
    const asked = h.revisions.find((r) => r.revision === toRevision);
    if (!asked) {
      throw failure(
        'NotFound',
        `rollback refused: deployments.apps/${deployment} in namespace ${namespace} has no revision ${toRevision} (revisions: ${h.revisions.map((r) => r.revision).join(', ') || 'none'}; current ${h.currentRevision ?? 'unknown'})`,
      );
    }
    return asked;
  }
  return previousRevision(h);
}

/** The current revision's pods and how many are ready; live pods of other revisions counted apart. */
export function availability(h: History, pods: PodSummary[]): Availability {
  const current = h.revisions.find((r) => r.revision === h.currentRevision);
  // A pod's name starts with its ReplicaSet's name: that tells the current revision's pods apart.
  const own = podCounts(current ? pods.filter((p) => p.name.startsWith(`${current.replicaSet}-`)) : []);
  return {
    ...(h.currentRevision !== undefined ? { revision: h.currentRevision } : {}),
    ...(current ? { replicaSet: current.replicaSet } : {}),
    images: current?.images ?? [],
    pods: own.pods,
    readyPods: own.readyPods,
    otherPods: livePods(pods).length - own.pods,
  };
}

export const describeAvailability = (a: Availability) =>
  `revision ${a.revision ?? '?'} (${imagesText(a.images)}): ${a.readyPods}/${a.pods} pods ready${a.otherPods ? `, ${a.otherPods} pods of other revisions` : ''}`;
