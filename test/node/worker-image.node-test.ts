import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { port, testbedLayout } from '../../scripts/testbed/layout';
import { adminKubeconfigPath } from '../../scripts/testbed/kubernetes-server';
import { kubernetesBinaries } from '../../scripts/testbed/kubernetes-install';
import { waitUntil } from '../../scripts/testbed/processes';
import { importIntoNode } from '../../scripts/testbed/node/node-lifecycle';
import { nodeNames } from '../../scripts/testbed/node/node-names';
import { buildWorkerImage, copiedFiles, imageLayerPaths, readDockerfile } from '../../scripts/testbed/node/worker-image';
import type { BuiltImage } from '../../scripts/testbed/node/node-images';
import { readYamlObjects } from '../../scripts/testbed/kubernetes-apply';

interface Deployment {
  kind: string;
  metadata: { name: string };
  spec: { template: { spec: { securityContext: object; containers: Array<{ name: string; securityContext: object; volumeMounts: object[] }>; volumes: object[] } } };
}

/** The worker Deployment's pod as deploy/kubernetes/base/worker.yaml has it, and its configuration (base/worker-config.yaml). */
const deployment = readYamlObjects('deploy/kubernetes/base/worker.yaml').find((o) => o.kind === 'Deployment') as unknown as Deployment;
const configMap = readYamlObjects('deploy/kubernetes/base/worker-config.yaml').find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
const podSpec = deployment.spec.template.spec;
const container = podSpec.containers.find((c) => c.name === 'worker')!;

// The first build runs mmdebstrap and npm ci; importing half a gigabyte into containerd takes a while.
jest.setTimeout(600_000);

/**
 * The worker image (issue 16 item 2) built on this machine without Docker, from the Dockerfile, and
 * run on the real node as the worker Deployment runs it: its own user, read-only root file system,
 * no capabilities.
 */
const layout = testbedLayout();
const names = nodeNames(layout);
const namespace = `worker-image-${randomBytes(3).toString('hex')}`;
let image: BuiltImage;

function kubectl(args: string[], input?: string): string {
  const result = spawnSync(kubernetesBinaries(layout).kubectl, ['--kubeconfig', adminKubeconfigPath(layout), '--request-timeout=20s', ...args], { encoding: 'utf8', input });
  if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

beforeAll(async () => {
  image = await buildWorkerImage(layout.cacheDir, () => undefined);
  kubectl(['create', 'namespace', namespace]);
});

afterAll(() => {
  spawnSync(kubernetesBinaries(layout).kubectl, ['--kubeconfig', adminKubeconfigPath(layout), 'delete', 'namespace', namespace, '--wait=false'], { stdio: 'ignore' });
});

describe('the worker image', () => {
  test("holds what the Dockerfile copies where it copies it, the production node_modules, Node and PostgreSQL's client tools", () => {
    const recipe = readDockerfile();
    const paths = new Set(imageLayerPaths(image.archive));
    const app = recipe.workdir.replace(/^\//, '');
    const missing = [...copiedFiles(recipe).values()].map((to) => `${app}/${to.replace(/^\.\//, '')}`).filter((path) => !paths.has(path));
    expect(missing).toEqual([]);
    for (const path of [
      `${app}/workflow-bundle.js`,
      `${app}/node_modules/@temporalio/worker/package.json`,
      `${app}/node_modules/tsx/package.json`,
      'usr/local/bin/node',
      'usr/bin/psql',
      'usr/bin/pg_restore',
    ])
      expect(paths).toContain(path);
    // --omit=dev: nothing only the tests use.
    expect([...paths].some((path) => path.startsWith(`${app}/node_modules/jest/`))).toBe(false);
  });

  test('runs its entry point on the real node as the Deployment runs it: non-root, read-only root, no capabilities', async () => {
    await importIntoNode(layout, image);
    kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'worker', namespace },
        spec: {
          nodeSelector: { [names.label.key]: names.label.value },
          tolerations: [{ key: names.label.key, operator: 'Equal', value: names.label.value, effect: 'NoSchedule' }],
          restartPolicy: 'Never',
          securityContext: podSpec.securityContext,
          containers: [
            {
              name: 'worker',
              image: image.ref,
              imagePullPolicy: 'Never',
              // The Deployment's configuration, with Temporal at an address where nothing listens: the worker
              // loads (Node, tsx, the SDK and its native bridge, which makes the connection) and says why it stops.
              env: Object.entries({ ...configMap.data, TEMPORAL_ADDRESS: `${names.nodeIp}:${port(layout, 'alwaysClosed')}` }).map(([name, value]) => ({ name, value })),
              securityContext: container.securityContext,
              volumeMounts: container.volumeMounts,
              resources: { limits: { memory: '512Mi', cpu: '500m' } },
            },
          ],
          volumes: podSpec.volumes,
        },
      }),
    );
    let terminated: { exitCode?: number; reason?: string } | undefined;
    await waitUntil(
      'the worker container to end',
      () => {
        const pod = JSON.parse(kubectl(['-n', namespace, 'get', 'pod', 'worker', '-o', 'json'])) as { status?: { containerStatuses?: Array<{ state?: { terminated?: typeof terminated } }> } };
        terminated = pod.status?.containerStatuses?.[0]?.state?.terminated;
        return terminated !== undefined;
      },
      240_000,
    );
    const log = kubectl(['-n', namespace, 'logs', 'worker']);
    expect(log).toContain('"message":"worker failed"');
    expect(log).toContain(`cannot reach Temporal at ${names.nodeIp}:${port(layout, 'alwaysClosed')}`);
    expect(terminated?.exitCode).toBe(1);
  });
});
