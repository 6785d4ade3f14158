import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchUtils, Watch, type KubeConfig, type V1ContainerStatus, type V1Pod } from '@kubernetes/client-node';
import { kubernetesStateDir } from '../../scripts/testbed/kubernetes-pki';
import { waitUntil } from '../../scripts/testbed/processes';
import { kubectl } from '../../scripts/testbed/node/node-kubectl';
import { criLogLines, layout, statusOf } from './kube-cluster';

const strategic = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_STRATEGIC_MERGE_PATCH } };
const merge = { headers: { 'Content-Type': PatchUtils.PATCH_FORMAT_JSON_MERGE_PATCH } };
const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

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

/** Adds `lines` to a running container's log as its own output (PID 1's stdout), through `kubectl exec`. */
export function printInContainer(namespace: string, pod: string, lines: string[]): void {
  kubectl(layout, ['exec', '-i', '-n', namespace, pod, '--', 'sh', '-c', 'cat > /proc/1/fd/1'], { input: lines.map((l) => `${l}\n`).join('') });
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

export interface CrashLoopOptions {
  container?: string;
  /** How the last run ended: OOMKilled (exit 137) or Error (exit 1). */
  reason?: 'OOMKilled' | 'Error';
  restartCount?: number;
}

/**
 * Puts a pod into CrashLoopBackOff the way the kubelet reports it: the container waiting with
 * reason CrashLoopBackOff, its last state terminated (OOMKilled/137 or Error/1), a restart count,
 * Ready=False, and a Warning BackOff event. Written through the pod's status subresource; kwok
 * leaves it alone (its pod-ready stage only acts on Pending pods, see kubernetes-install.ts).
 */
export async function putIntoCrashLoop(kc: KubeConfig, namespace: string, podName: string, options: CrashLoopOptions = {}): Promise<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  const { body: pod } = await core.readNamespacedPod(podName, namespace);
  const container = options.container ?? pod.spec!.containers[0]!.name;
  const image = pod.spec!.containers.find((c) => c.name === container)?.image;
  const reason = options.reason ?? 'OOMKilled';
  const restartCount = options.restartCount ?? 5;
  const now = new Date();
  const status = {
    phase: 'Running',
    conditions: [
      { type: 'Ready', status: 'False', reason: 'ContainersNotReady', message: `containers with unready status: [${container}]`, lastTransitionTime: rfc3339(now) },
      { type: 'ContainersReady', status: 'False', reason: 'ContainersNotReady', message: `containers with unready status: [${container}]`, lastTransitionTime: rfc3339(now) },
    ],
    containerStatuses: [
      {
        name: container,
        image,
        imageID: '',
        ready: false,
        started: false,
        restartCount,
        state: { running: null, terminated: null, waiting: { reason: 'CrashLoopBackOff', message: `back-off 5m0s restarting failed container=${container} pod=${podName}_${namespace}` } },
        lastState: {
          terminated: {
            exitCode: reason === 'OOMKilled' ? 137 : 1,
            reason,
            startedAt: rfc3339(new Date(now.getTime() - 40_000)),
            finishedAt: rfc3339(new Date(now.getTime() - 10_000)),
            containerID: `containerd://${'0'.repeat(64)}`,
          },
        },
      },
    ],
  };
  const { body } = await core.patchNamespacedPodStatus(podName, namespace, { status }, undefined, undefined, undefined, undefined, undefined, strategic);
  await core.createNamespacedEvent(namespace, {
    metadata: { generateName: `${podName}.`, namespace },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', name: podName, namespace, uid: pod.metadata!.uid, fieldPath: `spec.containers{${container}}` },
    type: 'Warning',
    reason: 'BackOff',
    message: `Back-off restarting failed container ${container} in pod ${podName}_${namespace}(${pod.metadata!.uid})`,
    source: { component: 'kubelet', host: pod.spec!.nodeName },
    firstTimestamp: now,
    lastTimestamp: now,
    count: restartCount,
  });
  return body;
}

/** Where setContainerLogs keeps a pod's log files. */
function podLogDir(namespace: string, pod: string): string {
  return join(kubernetesStateDir(layout), 'logs', 'pods', namespace, pod);
}

function podLogFile(namespace: string, pod: string, container: string, previous = false): string {
  return join(podLogDir(namespace, pod), `${container}${previous ? '.previous' : ''}.log`);
}

/**
 * Gives a container current (and previous) logs: CRI-format files under the state dir, served
 * by kwok through a `Logs` object for the pod (which takes precedence over the namespace's
 * ClusterLogs). Resolves once the apiserver returns the new current log.
 */
export async function setContainerLogs(kc: KubeConfig, namespace: string, pod: string, container: string, logs: { current: string[]; previous?: string[] }): Promise<void> {
  const current = podLogFile(namespace, pod, container);
  const previous = podLogFile(namespace, pod, container, true);
  mkdirSync(podLogDir(namespace, pod), { recursive: true });
  writeFileSync(current, criLogLines(logs.current));
  writeFileSync(previous, criLogLines(logs.previous ?? []));
  const custom = kc.makeApiClient(CustomObjectsApi);
  const entry = { containers: [container], logsFile: current, previousLogsFile: previous, follow: false };
  let existing: { spec?: { logs?: Array<{ containers?: string[] }> } } | undefined;
  try {
    existing = (await custom.getNamespacedCustomObject('kwok.x-k8s.io', 'v1alpha1', namespace, 'logs', pod)).body as typeof existing;
  } catch (err) {
    if (statusOf(err) !== 404) throw err;
  }
  const others = (existing?.spec?.logs ?? []).filter((l) => !l.containers?.includes(container));
  const object = { apiVersion: 'kwok.x-k8s.io/v1alpha1', kind: 'Logs', metadata: { name: pod, namespace }, spec: { logs: [...others, entry] } };
  if (existing) await custom.replaceNamespacedCustomObject('kwok.x-k8s.io', 'v1alpha1', namespace, 'logs', pod, { ...existing, spec: object.spec });
  else await custom.createNamespacedCustomObject('kwok.x-k8s.io', 'v1alpha1', namespace, 'logs', object);
  const core = kc.makeApiClient(CoreV1Api);
  const expected = logs.current.map((l) => `${l}\n`).join('');
  await waitUntil(`kwok to serve the new logs of ${namespace}/${pod}/${container}`, async () => (await core.readNamespacedPodLog(pod, namespace, container)).body === expected, 30_000);
}

/**
 * Sets what the metrics API reports for a pod (per container): kwok's usage-from-annotation
 * ClusterResourceUsage reads these annotations; metrics-server scrapes kwok every 10 s.
 */
export async function setPodUsage(kc: KubeConfig, namespace: string, pod: string, usage: { cpu: string; memory: string }): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await core.patchNamespacedPod(
    pod,
    namespace,
    { metadata: { annotations: { 'kwok.x-k8s.io/usage-cpu': usage.cpu, 'kwok.x-k8s.io/usage-memory': usage.memory } } },
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    merge,
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
