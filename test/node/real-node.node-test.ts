import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { testbedLayout } from '../../scripts/testbed/layout';
import { adminKubeconfigPath } from '../../scripts/testbed/kubernetes-server';
import { kubernetesBinaries } from '../../scripts/testbed/kubernetes-install';
import { waitUntil } from '../../scripts/testbed/processes';
import { nodeImages } from '../../scripts/testbed/node/node-lifecycle';
import { nodeNames } from '../../scripts/testbed/node/node-names';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { watchPods } from '../helpers/kube-pods';
import { postgresObjects, postgresVolumeDir } from './postgres-on-node';

// Real containers start, crash and restart in minutes, not seconds.
jest.setTimeout(600_000);

/**
 * The real node (scripts/testbed/node/) does what a production node does: containers from our
 * images run, Services answer through kube-proxy, the kernel OOM-kills a container over its limit,
 * logs and exec work. Expects the node up (see jest.node.config.js); teardown.node-test.ts, run
 * last, tears it down.
 */
const layout = testbedLayout();
const names = nodeNames(layout);
const namespace = `node-test-${randomBytes(3).toString('hex')}`;

function kubectl(args: string[], input?: string): string {
  const result = spawnSync(kubernetesBinaries(layout).kubectl, ['--kubeconfig', adminKubeconfigPath(layout), '--request-timeout=20s', ...args], { encoding: 'utf8', input });
  if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

function apply(object: object): void {
  kubectl(['apply', '-f', '-'], JSON.stringify(object));
}

interface PodStatus {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount: number; lastState?: { terminated?: { reason?: string; exitCode?: number } } }[];
  };
}

function pod(name: string): PodStatus {
  return JSON.parse(kubectl(['-n', namespace, 'get', 'pod', name, '-o', 'json'])) as PodStatus;
}

function ready(name: string): boolean {
  return pod(name).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Pod spec fields that put a pod on the real node, and only there. */
const onRealNode = {
  nodeSelector: { [names.label.key]: names.label.value },
  tolerations: [{ key: names.label.key, operator: 'Equal', value: names.label.value, effect: 'NoSchedule' }],
};

/** A pod on the real node (and only there), from one of our images, never pulled. */
function redisPod(name: string, extra: { args?: string[]; memoryLimit?: string } = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      ...onRealNode,
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name: 'redis',
          image: nodeImages(layout).redis,
          imagePullPolicy: 'Never',
          ...(extra.args ? { args: extra.args } : {}),
          ports: [{ containerPort: 6379 }],
          readinessProbe: { tcpSocket: { port: 6379 }, periodSeconds: 1 },
          resources: { limits: { memory: extra.memoryLimit ?? '128Mi', cpu: '200m' } },
        },
      ],
    },
  };
}

/** Sends one inline command to a Redis server and returns its first reply line. */
function redisCommand(host: string, portNumber: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port: portNumber });
    socket.setTimeout(3000);
    let reply = '';
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.destroy();
        resolve(reply.split('\r\n')[0]);
      }
    });
    socket.on('timeout', () => {
      socket.destroy();
      reject(new Error(`no reply from ${host}:${portNumber}`));
    });
    socket.on('error', reject);
  });
}

beforeAll(() => {
  const ready = spawnSync(
    kubernetesBinaries(layout).kubectl,
    ['--kubeconfig', adminKubeconfigPath(layout), 'get', 'node', names.nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'],
    { encoding: 'utf8' },
  );
  if (ready.stdout !== 'True') {
    throw new Error(
      `the real node ${names.nodeName} is not up (TESTBED_PORT_BASE=${layout.portBase}): start it with TESTBED_REAL_NODE=1 npm run testbed -- up kubernetes, then run npm run test:node again`,
    );
  }
  kubectl(['create', 'namespace', namespace]);
});

afterAll(() => {
  spawnSync(kubernetesBinaries(layout).kubectl, ['--kubeconfig', adminKubeconfigPath(layout), 'delete', 'persistentvolume', `${namespace}-postgres`, '--wait=false', '--ignore-not-found'], {
    stdio: 'ignore',
  });
  spawnSync(kubernetesBinaries(layout).kubectl, ['--kubeconfig', adminKubeconfigPath(layout), 'delete', 'namespace', namespace, '--wait=false'], { stdio: 'ignore' });
});

describe('the real node', () => {
  test('a Redis pod from our image becomes Ready and answers PING through a Service (kube-proxy) from the host', async () => {
    apply(redisPod('redis'));
    apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'redis', namespace }, spec: { selector: { app: 'redis' }, ports: [{ port: 6379, targetPort: 6379 }] } });
    await waitUntil('redis pod Ready', () => ready('redis'), 90_000);
    const clusterIp = kubectl(['-n', namespace, 'get', 'service', 'redis', '-o', 'jsonpath={.spec.clusterIP}']).trim();
    expect(clusterIp.startsWith(names.serviceCidr.split('.').slice(0, 3).join('.') + '.')).toBe(true);
    // kube-proxy programs the Service a moment after the endpoints appear: wait for the answer itself.
    let reply = '';
    await waitUntil(`PONG from ${clusterIp}:6379`, async () => (reply = await redisCommand(clusterIp, 6379, 'PING')) === '+PONG', 30_000);
    expect(reply).toBe('+PONG');
  });

  test('logs and exec reach the container', () => {
    expect(kubectl(['-n', namespace, 'logs', 'redis'])).toContain('Ready to accept connections');
    expect(kubectl(['-n', namespace, 'exec', 'redis', '--', 'redis-cli', 'PING']).trim()).toBe('PONG');
  });

  test('a container over its memory limit is OOMKilled by the kernel (exit 137)', async () => {
    apply(redisPod('hungry', { args: ['redis-server', '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', '', '--enable-debug-command', 'yes'], memoryLimit: '32Mi' }));
    await waitUntil('hungry pod Ready', () => ready('hungry'), 90_000);
    // ~200 MB of keys in a 32 MiB cgroup: the kernel kills redis-server (and this exec with it).
    spawnSync(kubernetesBinaries(layout).kubectl, ['--kubeconfig', adminKubeconfigPath(layout), '-n', namespace, 'exec', 'hungry', '--', 'redis-cli', 'DEBUG', 'POPULATE', '2000000', 'key', '100'], {
      stdio: 'ignore',
      timeout: 60_000,
    });
    let terminated: { reason?: string; exitCode?: number } | undefined;
    await waitUntil('hungry container terminated', () => (terminated = pod('hungry').status?.containerStatuses?.[0]?.lastState?.terminated) !== undefined, 60_000);
    expect(terminated).toMatchObject({ reason: 'OOMKilled', exitCode: 137 });
  });

  test('a pod reaches the apiserver through the kubernetes Service: GET /version and a SelfSubjectReview with its service-account token', async () => {
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'apiserver-probe', namespace },
      spec: {
        ...onRealNode,
        restartPolicy: 'Never',
        containers: [{ name: 'probe', image: nodeImages(layout)['apiserver-probe'], imagePullPolicy: 'Never' }],
      },
    });
    let phase: string | undefined;
    await waitUntil('apiserver-probe pod to finish', () => ['Succeeded', 'Failed'].includes((phase = pod('apiserver-probe').status?.phase) ?? ''), 90_000);
    const output = kubectl(['-n', namespace, 'logs', 'apiserver-probe']).trim();
    expect({ phase, output }).toMatchObject({ phase: 'Succeeded' });
    expect(JSON.parse(output)).toEqual({ gitVersion: 'v1.37.2', username: `system:serviceaccount:${namespace}:default` });
  });

  test('PostgreSQL (Deployment, Recreate, hostPath volume): ALTER SYSTEM + rollout restart takes max_connections from 100 to 150, never two servers running at once', async () => {
    const image = nodeImages(layout).postgres;
    for (const object of postgresObjects({ namespace, names, image, volumeDir: postgresVolumeDir(names, namespace), podSpecExtras: onRealNode })) apply(object);
    const psql = (sql: string) => kubectl(['-n', namespace, 'exec', 'deploy/postgres', '--', 'psql', '-U', 'postgres', '-tAc', sql]).trim();
    const rollout = () => kubectl(['-n', namespace, 'rollout', 'status', 'deployment/postgres', '--timeout=120s']);
    rollout();
    await waitUntil('postgres to answer', () => psql('SELECT 1') === '1', 30_000);
    expect(psql('SHOW max_connections')).toBe('100');

    const watch = await watchPods(adminKubeConfig(), namespace, 'app=postgres');
    try {
      // The watch has the current server before anything changes.
      await waitUntil('the pod watch to see the running server', () => watch.seenRunning().length === 1, 10_000);
      psql('ALTER SYSTEM SET max_connections = 150');
      psql('SELECT pg_reload_conf()');
      // A reload does not change it: the setting needs a restart, as the runbook's manual says.
      expect(psql("SELECT setting || ' ' || pending_restart FROM pg_settings WHERE name = 'max_connections'")).toBe('100 true');
      kubectl(['-n', namespace, 'rollout', 'restart', 'deployment/postgres']);
      rollout();
      await waitUntil('the restarted postgres to answer', () => psql('SELECT 1') === '1', 30_000);
      expect(psql('SHOW max_connections')).toBe('150');
      // kubectl ran synchronously meanwhile: let the watch read the events the apiserver has sent.
      await waitUntil('the pod watch to see the new server', () => watch.seenRunning().length >= 2, 10_000);
    } finally {
      watch.stop();
    }
    expect(watch.seenRunning()).toHaveLength(2); // the old server and the new one, the data kept on the volume
    expect(watch.maxRunning()).toBe(1);
  });
});
