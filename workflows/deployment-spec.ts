import type { NamespaceSnapshot } from '../activities/kubernetes-config';
import type { PodSummary } from '../activities/kubernetes-pods';
import { failure } from '../common/failures';

export type DeploymentSpec = NamespaceSnapshot['deployments'][number];

/** The Deployment in a namespace snapshot; NotFound (non-retryable) when the snapshot has none of that name. */
export function deploymentOf(snapshot: NamespaceSnapshot, deployment: string): DeploymentSpec {
  const d = snapshot.deployments.find((x) => x.name === deployment);
  if (!d) throw failure('NotFound', `deployments.apps/${deployment} not found in namespace ${snapshot.namespace}`);
  return d;
}

/** One container of a Deployment's pod template; NotFound (non-retryable, naming the containers there are) when it has none of that name. */
export function containerOf<C extends { name: string }>(where: { namespace: string; deployment: string }, containers: C[], container: string): C {
  const c = containers.find((x) => x.name === container);
  if (!c) {
    throw failure('NotFound', `deployments.apps/${where.deployment} in namespace ${where.namespace} has no container ${container} (containers: ${containers.map((x) => x.name).join(', ')})`);
  }
  return c;
}

/** The pods not being deleted. */
export function livePods(pods: PodSummary[]): PodSummary[] {
  return pods.filter((p) => !p.terminating);
}

export interface PodCounts {
  /** Live (not terminating) pods. */
  pods: number;
  /** Those of them that are ready. */
  readyPods: number;
}

/** How many of the pods are live (not terminating), and how many of those are ready. */
export function podCounts(pods: PodSummary[]): PodCounts {
  const live = livePods(pods);
  return { pods: live.length, readyPods: live.filter((p) => p.ready).length };
}

/** The newest revision before the current one (`rollout undo` without --to-revision); undefined when there is none. */
export function previousRevision<R extends { revision: number }>(history: { revisions: R[]; currentRevision?: number }): R | undefined {
  return history.revisions.filter((r) => r.revision < (history.currentRevision ?? 0)).sort((a, b) => b.revision - a.revision)[0];
}
