import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { readEnvFile } from '../../../config/sandbox';
import { workerNamespace } from '../../deploy-manifests';
import type { TestbedLayout } from '../layout';
import { KubeConfig } from '@kubernetes/client-node';
import { adminKubeconfigPath } from '../kubernetes-server';
import { waitForRollout } from '../kubernetes-seed';
import { sandboxOverlayDir } from '../service-account-access';
import { hostAddressForPods } from './host-access';
import { kubectl } from './node-kubectl';
import { importIntoNode } from './node-lifecycle';
import { nodeNames } from './node-names';
import { buildWorkerImage } from './worker-image';

/**
 * The worker as a team runs it (issue 16 item 3): the image built from the Dockerfile, deployed by
 * the sandbox overlay with `kubectl apply -k` as the ServiceAccount `runbook-worker` under the
 * overlay's RBAC, its pods on the real node. The overlay is the repo's own; what only this machine
 * knows (the image's tag, the node, the test bed's addresses and credentials) comes from a
 * kustomization generated beside the test bed's state, as a team's own overlay would hold it.
 */
export const workerDeployment = 'runbook-worker';
/** A queue of their own, so the pods never take a task meant for a test's in-process worker. */
export const workerPodsTaskQueue = 'runbooks-on-node';
/** What the ConfigMap's comment says goes into the Secret runbook-worker-credentials. */
const credentialVariables = ['DATABASE_URL', 'RESTORE_DRILL_DATABASE_URL', 'REDIS_URL', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'];
/** Plain settings of the test bed the pods need (the base ConfigMap has the rest). */
const settingVariables = ['TEMPORAL_NAMESPACE', 'S3_REGION', 'S3_BUCKET', 'S3_FORCE_PATH_STYLE'];
/** Settings that are addresses on this machine's loopback, reached from pods through the node's relay. */
const addressVariables = ['TEMPORAL_ADDRESS', 'S3_ENDPOINT', 'PROMETHEUS_URL', 'NOTIFY_WEBHOOK_URL'];

const overlayDir = (layout: TestbedLayout) => join(layout.stateDir, 'worker-pods');
const envLines = (values: Record<string, string>) =>
  `${Object.entries(values)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;

export interface WorkerPodsOptions {
  replicas?: number;
  /** Settings for the pods besides the test bed's (e.g. RUNBOOK_APPROVERS). */
  settings?: Record<string, string>;
}

/** Builds and imports the image, applies the generated overlay and waits until every replica is Ready. */
export async function deployWorkerPods(layout: TestbedLayout, log: (line: string) => void, options: WorkerPodsOptions = {}): Promise<void> {
  const names = nodeNames(layout);
  const image = await buildWorkerImage(layout.cacheDir, log);
  await importIntoNode(layout, image);
  const env = readEnvFile(layout.envFile);
  const pick = (variables: string[], map: (value: string) => string = (v) => v) => Object.fromEntries(variables.filter((v) => env[v] !== undefined).map((v) => [v, map(env[v]!)]));
  const dir = overlayDir(layout);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'settings.env'),
    envLines({
      ...pick(settingVariables),
      ...pick(addressVariables, (address) => hostAddressForPods(layout, names, address)),
      TEMPORAL_TASK_QUEUE: workerPodsTaskQueue,
      ...options.settings,
    }),
  );
  // The credentials file lives only while the Secret is made; values never reach the repo.
  writeFileSync(join(dir, 'credentials.env'), envLines(pick(credentialVariables)), { mode: 0o600 });
  chmodSync(join(dir, 'credentials.env'), 0o600);
  const [imageName, imageTag] = image.ref.split(/:(?=[^:]+$)/);
  const { key, value } = names.label;
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [relative(dir, sandboxOverlayDir(layout))],
    images: [{ name: 'runbook-automation', newName: imageName, newTag: imageTag }],
    replicas: [{ name: workerDeployment, count: options.replicas ?? 2 }],
    configMapGenerator: [{ name: 'runbook-worker-config', namespace: workerNamespace, behavior: 'merge', envs: ['settings.env'] }],
    secretGenerator: [{ name: 'runbook-worker-credentials', namespace: workerNamespace, envs: ['credentials.env'] }],
    generatorOptions: { disableNameSuffixHash: true },
    patches: [
      {
        target: { kind: 'Deployment', name: workerDeployment },
        // The node's local images are never pulled; only pods that ask for the real node land there.
        patch: toYaml([
          { op: 'add', path: '/spec/template/spec/nodeSelector', value: { [key]: value } },
          { op: 'add', path: '/spec/template/spec/tolerations', value: [{ key, operator: 'Equal', value, effect: 'NoSchedule' }] },
          { op: 'replace', path: '/spec/template/spec/containers/0/imagePullPolicy', value: 'Never' },
        ]),
      },
    ],
  };
  writeFileSync(join(dir, 'kustomization.yaml'), toYaml(kustomization));
  try {
    kubectl(layout, ['apply', '--server-side', '--force-conflicts', '--field-manager', 'runbook-testbed', '-k', dir]);
  } finally {
    rmSync(join(dir, 'credentials.env'), { force: true });
  }
  await waitForWorkerRollout(layout);
}

/** The worker Deployment rolled out: every replica updated and available (the seed's wait, as the test bed's admin). */
export function waitForWorkerRollout(layout: TestbedLayout, timeoutMs = 300_000): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(adminKubeconfigPath(layout));
  return waitForRollout(kc, workerNamespace, workerDeployment, timeoutMs);
}

/** Back to the sandbox overlay as the test bed applies it (no pods), and the credentials Secret gone. */
export function removeWorkerPods(layout: TestbedLayout): void {
  kubectl(layout, ['apply', '--server-side', '--force-conflicts', '--field-manager', 'runbook-testbed', '-k', sandboxOverlayDir(layout)]);
  kubectl(layout, ['-n', workerNamespace, 'delete', 'secret', 'runbook-worker-credentials', '--ignore-not-found']);
  rmSync(overlayDir(layout), { recursive: true, force: true });
}

/** The names of the worker's pods (terminating ones too). */
export function workerPods(layout: TestbedLayout): string[] {
  const list = JSON.parse(kubectl(layout, ['-n', workerNamespace, 'get', 'pods', '-l', `app.kubernetes.io/name=${workerDeployment}`, '-o', 'json'])) as {
    items: Array<{ metadata: { name: string } }>;
  };
  return list.items.map((pod) => pod.metadata.name);
}
