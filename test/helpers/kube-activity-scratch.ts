import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, AutoscalingV2Api, CoreV1Api, type KubeConfig, type V1Deployment, type V1PodSpec } from '@kubernetes/client-node';
import { appDeployment, appReleases } from '../../scripts/testbed/kubernetes-seed';
import { waitUntil } from '../../scripts/testbed/processes';
import { kubernetesStateDir } from '../../scripts/testbed/kubernetes-pki';
import { kubernetesNamespace, layout, statusOf, testbedRealNode, waitForRollout } from './kube-cluster';

export const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

const ignore404 = (err: unknown) => {
  if (statusOf(err) !== 404) throw err;
};

/** An HPA (min 1, max 2, CPU 70%) on the scratch Deployment `name`, as emergencyScale finds one. */
export async function scratchAutoscaler(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(AutoscalingV2Api).createNamespacedHorizontalPodAutoscaler(kubernetesNamespace, {
    metadata: { name, labels: { 'runbook-test/scratch': 'true' } },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicas: 1,
      maxReplicas: 2,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
    },
  });
}

/** The app's switch that gets a scratchApp (limits.memory 256Mi) OOM-killed by the kernel; ×1.5 = 384Mi would hold it. */
export const outOfMemory = { ALLOCATE_MEMORY_MIB: '300' };

/** What a scratch app may differ in: its pod labels, the app's switches (env, see short-drama-app.py) and its memory limit. */
interface ScratchAppOptions {
  replicas?: number;
  strategy?: 'RollingUpdate' | 'Recreate';
  labels?: Record<string, string>;
  /** The container's name (default app, as the seeded app's). */
  container?: string;
  /** A claim mounted at /data. */
  claim?: string;
  env?: Record<string, string>;
  memoryLimit?: string;
  /**
   * Instead of the app, `sh -c script` in its image (dash and coreutils): lines it prints are real
   * container logs, stamped by the runtime. Its pods are Ready while it runs; an emptyDir at /state
   * outlives a restart of the container, so a script can tell its first instance from the next.
   */
  script?: string;
}

/** The seeded app's pod on the real node as a scratch app's options change it. */
function realPodSpec(what: string, options: ScratchAppOptions): { seeded: V1Deployment; spec: V1PodSpec } {
  const realNode = testbedRealNode();
  if (!realNode) throw new Error(`${what}: real containers need the test bed's node, and TESTBED_REAL_NODE=0 has none`);
  const seeded = appDeployment(appReleases[1], realNode) as unknown as V1Deployment;
  const pod = seeded.spec!.template.spec!;
  const [app] = pod.containers;
  const mounts = [...(options.script ? [{ name: 'state', mountPath: '/state' }] : []), ...(options.claim ? [{ name: 'data', mountPath: '/data' }] : [])];
  const container = {
    ...app!,
    name: options.container ?? app!.name,
    env: [...(app!.env ?? []), ...Object.entries(options.env ?? {}).map(([key, value]) => ({ name: key, value }))],
    // Small requests: the one real node (2 cores, most requested by short-drama-prod) holds many scratch pods at once.
    resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: options.memoryLimit ?? '256Mi' } },
    ...(options.script ? { command: ['sh', '-c', options.script], readinessProbe: undefined } : {}),
    ...(mounts.length ? { volumeMounts: mounts } : {}),
  };
  const volumes = [
    ...(pod.volumes ?? []),
    ...(options.script ? [{ name: 'state', emptyDir: {} }] : []),
    ...(options.claim ? [{ name: 'data', persistentVolumeClaim: { claimName: options.claim } }] : []),
  ];
  return { seeded, spec: { ...pod, volumes: volumes.length ? volumes : undefined, containers: [container] } };
}

/** A bare pod of one's own (no Deployment) on the real node, running a restartableScript, labelled as told. */
export async function scratchPod(kc: KubeConfig, namespace: string, name: string, labels: Record<string, string>): Promise<void> {
  const { spec } = realPodSpec(`scratchPod ${name}`, { script: restartableScript() });
  // Secrets and ConfigMaps the app's env names exist in short-drama-prod only: a scratch namespace's pod runs without them.
  const containers = spec.containers.map((c) => ({ ...c, env: undefined, envFrom: undefined }));
  await kc.makeApiClient(CoreV1Api).createNamespacedPod(namespace, { metadata: { name, labels }, spec: { ...spec, containers } });
}

/**
 * A short-drama-app of one's own in short-drama-prod, one replica, running for real on the test bed's
 * node: the seeded app's pod (image, Secret, ConfigMap, ready when /health answers) with its own
 * labels (so the app's Service never sends it traffic) and limits.memory 256Mi unless told. Faults are
 * the app's own switches in `env`, set from the start, so its first revision already crashes
 * (ALLOCATE_MEMORY_MIB past the limit: OOMKilled; REQUIRED_CONFIG: exit 1). Without switches it is
 * rolled out (Ready) before this returns.
 */
export async function scratchApp(kc: KubeConfig, name: string, options: ScratchAppOptions = {}): Promise<V1Deployment> {
  const labels = options.labels ?? { app: name };
  const { seeded, spec } = realPodSpec(`scratchApp ${name}`, options);
  await kc.makeApiClient(AppsV1Api).createNamespacedDeployment(kubernetesNamespace, {
    metadata: { name, labels: { 'runbook-test/scratch': 'true' } },
    spec: {
      replicas: options.replicas ?? 1,
      ...(options.strategy ? { strategy: { type: options.strategy } } : {}),
      selector: { matchLabels: labels },
      template: { metadata: { labels, annotations: seeded.spec!.template.metadata?.annotations }, spec },
    },
  });
  if (!options.env || Object.keys(options.env).length === 0) await waitForRollout(kc, kubernetesNamespace, name, 120_000);
  return (await kc.makeApiClient(AppsV1Api).readNamespacedDeployment(name, kubernetesNamespace)).body;
}

const shellQuoted = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

/**
 * A scratchApp script with instances as a real server has them. The first instance prints
 * `firstLines` (one log line each) and runs until it is stopped (SIGTERM: exit 1) or told to hold
 * more memory than the container may (/state/oom: then the kernel OOM-kills it); the instances
 * the kubelet starts after it print nothing and run on. See restartInContainer.
 */
export function restartableScript(firstLines: string[] = []): string {
  const print = firstLines.length ? `printf '%s\\n' ${firstLines.map(shellQuoted).join(' ')}; ` : '';
  const oom = `exec python3 -c "x = b'x' * (600 << 20)"`;
  return `trap 'exit 1' TERM; if [ -e /state/started ]; then sleep 3600 & wait; else touch /state/started; ${print}until [ -e /state/oom ]; do sleep 0.2; done; ${oom}; fi`;
}

/**
 * A database-like Deployment of one's own on the real node: container "db", its pods mount a
 * ReadWriteOnce claim of its own (same name), strategy RollingUpdate unless told, pods ready.
 * Removed with deleteSingleWriter.
 */
export async function scratchSingleWriter(kc: KubeConfig, name: string, options: Pick<ScratchAppOptions, 'strategy' | 'replicas'> = {}): Promise<V1Deployment> {
  await scratchBoundClaim(kc, name, 'fixed', '1Gi');
  return scratchApp(kc, name, { ...options, strategy: options.strategy ?? 'RollingUpdate', claim: name, container: 'db', script: restartableScript() });
}

export async function deleteSingleWriter(kc: KubeConfig, name: string): Promise<void> {
  await deleteDeployment(kc, name);
  await deleteBoundClaim(kc, name);
}

export async function deleteDeployment(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(AppsV1Api).deleteNamespacedDeployment(name, kubernetesNamespace, undefined, undefined, 0, undefined, 'Foreground').catch(ignore404);
}

const scratchVolumeDir = (name: string) => join(kubernetesStateDir(layout), 'volumes', 'scratch', name);

/** A PersistentVolume (hostPath) and a claim bound to it, on the given StorageClass. */
export async function scratchBoundClaim(kc: KubeConfig, name: string, storageClass: string, size = '1Gi'): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await core.createPersistentVolume({
    metadata: { name: `${kubernetesNamespace}-${name}`, labels: { 'runbook-test/scratch': 'true' } },
    spec: {
      capacity: { storage: size },
      accessModes: ['ReadWriteOnce'],
      storageClassName: storageClass,
      persistentVolumeReclaimPolicy: 'Retain',
      // In the test bed's state folder: deleteBoundClaim removes it, and `down` leaves nothing elsewhere.
      hostPath: { path: scratchVolumeDir(name), type: 'DirectoryOrCreate' },
      claimRef: { namespace: kubernetesNamespace, name },
    },
  });
  await core.createNamespacedPersistentVolumeClaim(kubernetesNamespace, {
    metadata: { name },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: storageClass, volumeName: `${kubernetesNamespace}-${name}`, resources: { requests: { storage: size } } },
  });
  await waitUntil(`claim ${name} Bound`, async () => (await core.readNamespacedPersistentVolumeClaim(name, kubernetesNamespace)).body.status?.phase === 'Bound', 60_000);
}

export async function deleteBoundClaim(kc: KubeConfig, name: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  await core.deleteNamespacedPersistentVolumeClaim(name, kubernetesNamespace).catch(ignore404);
  await core.deletePersistentVolume(`${kubernetesNamespace}-${name}`).catch(ignore404);
  rmSync(scratchVolumeDir(name), { recursive: true, force: true });
}
