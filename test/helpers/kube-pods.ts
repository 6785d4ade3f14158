import { CoreV1Api, Watch, type KubeConfig, type V1ContainerStatus, type V1Pod } from '@kubernetes/client-node';
import { waitUntil } from '../../scripts/testbed/processes';
import { kubectl } from '../../scripts/testbed/node/node-kubectl';
import { layout } from './kube-cluster';

/** Pods matching a label selector, waiting until there are `count` of them Running and Ready. */
export async function readyPods(kc: KubeConfig, namespace: string, labelSelector: string, count: number, timeoutMs = 60_000): Promise<V1Pod[]> {
  const core = kc.makeApiClient(CoreV1Api);
  let pods: V1Pod[] = [];
  await waitUntil(
    `${count} Running/Ready pods ${labelSelector} in ${namespace}`,
    async () => {
      const { body } = await core.listNamespacedPod(namespace, undefined, undefined, undefined, undefined, labelSelector);
      pods = body.items.filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return pods.length === count;
    },
    timeoutMs,
  );
  return pods;
}

/** How a real container fails, as the kubelet reports it. */
export type RealFault = 'OOMKilled' | 'Error' | 'CreateContainerConfigError';

const shows: Record<RealFault, (c: V1ContainerStatus) => boolean> = {
  // Back-off after a kill by the kernel (exit 137) / after exiting 1: what `kubectl get pods` shows as CrashLoopBackOff.
  OOMKilled: (c) => c.state?.waiting?.reason === 'CrashLoopBackOff' && c.lastState?.terminated?.reason === 'OOMKilled',
  Error: (c) => c.state?.waiting?.reason === 'CrashLoopBackOff' && c.lastState?.terminated?.exitCode === 1,
  // The kubelet refuses to create the container (a key missing from its ConfigMap or Secret).
  CreateContainerConfigError: (c) => c.state?.waiting?.reason === 'CreateContainerConfigError',
};

/** Waits until a live pod of the selector fails for real as `fault` says (a container of a real node), and returns it. */
export async function failingPod(kc: KubeConfig, namespace: string, labelSelector: string, fault: RealFault, timeoutMs = 120_000): Promise<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  let failing: V1Pod | undefined;
  await waitUntil(
    `a pod ${labelSelector} in ${namespace} failing with ${fault}`,
    async () => {
      const { body } = await core.listNamespacedPod(namespace, undefined, undefined, undefined, undefined, labelSelector);
      failing = body.items.find((p) => !p.metadata?.deletionTimestamp && p.status?.containerStatuses?.some(shows[fault]));
      return failing !== undefined;
    },
    timeoutMs,
  );
  return failing!;
}

/** Waits until the API serves `lines` as the container's current log (what its script printed), and returns the pod's name. */
export async function podLogging(kc: KubeConfig, namespace: string, labelSelector: string, lines: string[], timeoutMs = 60_000): Promise<string> {
  const [pod] = await readyPods(kc, namespace, labelSelector, 1, timeoutMs);
  const name = pod!.metadata!.name!;
  const core = kc.makeApiClient(CoreV1Api);
  const expected = lines.map((l) => `${l}\n`).join('');
  await waitUntil(`the log of ${namespace}/${name} to hold its ${lines.length} lines`, async () => String((await core.readNamespacedPodLog(name, namespace)).body) === expected, timeoutMs);
  return name;
}

/**
 * Adds `lines` to a running container's log as its own output (PID 1's stdout), through `kubectl
 * exec`, and waits until the API serves the last of them (the runtime writes the log file after).
 */
export async function printInContainer(kc: KubeConfig, namespace: string, pod: string, lines: string[]): Promise<void> {
  kubectl(layout, ['exec', '-i', '-n', namespace, pod, '--', 'sh', '-c', 'cat > /proc/1/fd/1'], { input: lines.map((l) => `${l}\n`).join('') });
  const core = kc.makeApiClient(CoreV1Api);
  const last = `${lines.at(-1)}\n`;
  await waitUntil(
    `the log of ${namespace}/${pod} to end with the lines printed`,
    async () => String((await core.readNamespacedPodLog(pod, namespace, undefined, false, undefined, undefined, undefined, false, undefined, 1)).body) === last,
    30_000,
  );
}

/**
 * Ends the running instance of a restartableScript container, as `exit` (SIGTERM to its PID 1:
 * exit 1) or `oom` (it holds more than its limit and the kernel kills it), and waits until the
 * kubelet has started the next one.
 */
export async function restartInContainer(kc: KubeConfig, namespace: string, pod: string, how: 'exit' | 'oom'): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const container = async () => (await core.readNamespacedPod(pod, namespace)).body.status?.containerStatuses?.[0];
  const before = (await container())?.restartCount ?? 0;
  // The exec'd shell of `kill 1` ends with the container (exit 137), so its status says nothing: the restart count does.
  kubectl(layout, ['exec', '-n', namespace, pod, '--', 'sh', '-c', how === 'exit' ? 'kill 1' : 'touch /state/oom'], { check: how === 'oom' });
  const reason = how === 'exit' ? 'Error' : 'OOMKilled';
  await waitUntil(
    `${namespace}/${pod} ended (${reason}) and running again`,
    async () => {
      const status = await container();
      return status?.restartCount === before + 1 && status.lastState?.terminated?.reason === reason && status.state?.running !== undefined;
    },
    60_000,
  );
}

export interface PodWatch {
  /** Every pod that existed while watched (the ones there at the start too). */
  seen: Set<string>;
  /** The most pods that existed at once; a terminating pod exists until it is deleted. */
  maxAtOnce: () => number;
  /** The pods seen in phase Running (a server that ran), and the most that were Running at once. */
  seenRunning: () => string[];
  maxRunning: () => number;
  /** Stops the watch; throws if it ended early (it would have missed events). */
  stop: () => void;
}

/** A real Kubernetes watch of the pods a selector matches, from a list's resourceVersion on, so no event is missed. */
export async function watchPods(kc: KubeConfig, namespace: string, labelSelector: string): Promise<PodWatch> {
  const { body } = await kc.makeApiClient(CoreV1Api).listNamespacedPod(namespace, undefined, undefined, undefined, undefined, labelSelector);
  const live = new Set(body.items.map((p) => p.metadata!.name!));
  const seen = new Set(live);
  let max = live.size;
  const running = new Set(body.items.filter((p) => p.status?.phase === 'Running').map((p) => p.metadata!.name!));
  const seenRunning = new Set(running);
  let maxRunning = running.size;
  let ended: unknown;
  let stopping = false;
  const request = (await new Watch(kc).watch(
    `/api/v1/namespaces/${namespace}/pods`,
    { labelSelector, resourceVersion: body.metadata?.resourceVersion, allowWatchBookmarks: false },
    (phase: string, pod: V1Pod) => {
      const name = pod.metadata?.name ?? '';
      if (phase === 'ADDED' || phase === 'MODIFIED') live.add(name);
      if (phase === 'DELETED') live.delete(name);
      if (name) seen.add(name);
      max = Math.max(max, live.size);
      if (phase !== 'DELETED' && pod.status?.phase === 'Running') {
        running.add(name);
        seenRunning.add(name);
      } else running.delete(name);
      maxRunning = Math.max(maxRunning, running.size);
    },
    (err: unknown) => {
      if (!stopping) ended = err ?? new Error('the watch ended early');
    },
  )) as { abort: () => void };
  return {
    seen,
    maxAtOnce: () => max,
    seenRunning: () => [...seenRunning],
    maxRunning: () => maxRunning,
    stop: () => {
      stopping = true;
      request.abort();
      if (ended) throw new Error(`pod watch ended early: ${String(ended)}`);
    },
  };
}
