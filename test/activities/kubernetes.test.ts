import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createKubernetesActivities } from '../../activities/kubernetes';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { adminKubeConfig, kubernetesNamespace as ns, layout, scratchNamespace, testbedRealNode, waitForRollout } from '../helpers/kube-cluster';
import { appImage, appReleases } from '../../scripts/testbed/kubernetes-seed';
import { newRolloutRevision, patchDeployment } from '../helpers/kube-objects';
import { failingPod, printInContainer, readyPods, restartInContainer, watchPods } from '../helpers/kube-pods';
import { deleteBoundClaim, deleteDeployment, deleteSingleWriter, outOfMemory, restartableScript, scratchApp, scratchBoundClaim, scratchSingleWriter, unique } from '../helpers/kube-activity-scratch';
import { nodeNames } from '../../scripts/testbed/node/node-names';
import { testbedEnv } from '../helpers/testbed';
import { waitUntil } from '../../scripts/testbed/processes';
import { failureOf } from '../helpers/failures';

/**
 * The Kubernetes activities against the test bed's real control plane. Reads use the seeded
 * objects of short-drama-prod; everything that mutates works on scratch objects with unique
 * names (deleted at the end), so the seeded objects stay as other tests expect. The activities run as
 * cluster admin here: they are tested on kinds and verbs beyond what the runbooks use (a ConfigMap, a
 * Certificate, any Role); the worker's least-privilege account is proven by the runbooks' tests and preflight.
 */
const asAdmin = () => ({ KUBECONFIG: testbedEnv().TESTBED_KUBECONFIG_ADMIN });
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const apps = kc.makeApiClient(AppsV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
let h: ActivityHarness; // replaced after a cancellation test
let ro: ActivityHarness;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(() => {
  h = activityHarness(asAdmin());
  ro = activityHarness({ KUBECONFIG: testbedEnv().TESTBED_KUBECONFIG_READONLY, ALLOWED_NAMESPACES: `${ns},default` });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await h?.close();
  await ro?.close();
});

describe('refusals common to every activity', () => {
  test('kube-system and namespaces outside the allowlist are refused, bad names are invalid input', async () => {
    expect((await failureOf(h.run('listPodSummaries', { namespace: 'kube-system' }))).type).toBe('Refused');
    expect((await failureOf(h.run('listServices', { namespace: 'default' }))).type).toBe('Refused');
    expect((await failureOf(h.run('scaleDeployment', { namespace: 'kube-system', deployment: 'coredns', replicas: 0 }))).type).toBe('Refused');
    expect((await failureOf(h.run('getContainerLogs', { namespace: ns, pod: 'Bad_Name' }))).type).toBe('InvalidInput');
  });

  test('403 is Forbidden and names verb, resource and namespace', async () => {
    const f = await failureOf(ro.run('listServices', { namespace: 'default' }));
    expect(f.type).toBe('Forbidden');
    expect(f.message).toMatch(/list services in namespace default/);
    expect(f.nonRetryable).toBe(true);
  });

  test('a connection refused is Transient', async () => {
    const bad = new KubeConfig();
    bad.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const env = new MockActivityEnvironment();
    const acts = createKubernetesActivities({ kube: bad, allowedNamespaces: [ns] });
    const f = await failureOf(env.run(acts.listPodSummaries, { namespace: ns }));
    expect(f.type).toBe('Transient');
  });
});

describe('pods, events, logs', () => {
  let dep: string;
  let pod: string;
  const since = new Date(Date.now() - 1000).toISOString();
  beforeAll(async () => {
    dep = unique('kt-crash');
    cleanups.push(() => deleteDeployment(kc, dep));
    // A real crash loop: the kernel OOM-kills the container, the kubelet backs off and says so in an event.
    await scratchApp(kc, dep, { env: outOfMemory });
    pod = (await failingPod(kc, ns, `app=${dep}`, 'OOMKilled')).metadata!.name!;
    await waitUntil(
      `the kubelet's BackOff event of ${pod}`,
      async () => (await core.listNamespacedEvent(ns, undefined, undefined, undefined, `involvedObject.name=${pod}`)).body.items.some((e) => e.reason === 'BackOff'),
      60_000,
    );
  });

  test('pod summaries: seeded pods Ready, the crash-looping one with its reason and exit code', async () => {
    const result = await h.run('listPodSummaries', { namespace: ns });
    expect(result.pages).toBe(1);
    const app = result.pods.filter((p) => p.name.startsWith('short-drama-app-'));
    expect(app.length).toBeGreaterThanOrEqual(2);
    expect(app.every((p) => p.phase === 'Running')).toBe(true);
    const crash = result.pods.find((p) => p.name === pod)!;
    // Between two back-offs the container is briefly terminated or running again: crash-looping all the same.
    expect(crash).toMatchObject({ ready: false, crashLooping: true, lastTerminationReason: 'OOMKilled', lastExitCode: 137, readyContainers: '0/1' });
    expect(crash.restarts).toBeGreaterThanOrEqual(1);
    expect(result.counts.crashLooping).toBeGreaterThanOrEqual(1);
    // One LIST per page.
    const paged = await h.run('listPodSummaries', { namespace: ns, pageSize: 1 });
    expect(paged.pages).toBeGreaterThanOrEqual(paged.pods.length);
    expect(paged.pods.length).toBe(result.pods.length);
    expect((await failureOf(h.run('listPodSummaries', { namespace: ns, pageSize: 0 }))).type).toBe('InvalidInput');
  });

  test("a deployment's pods by its own selector, whatever its labels are called", async () => {
    const labelled = unique('kt-selector');
    cleanups.push(() => deleteDeployment(kc, labelled));
    await scratchApp(kc, labelled, { replicas: 2, labels: { 'app.kubernetes.io/name': labelled, tier: 'web' }, script: restartableScript() });
    const result = await h.run('listPodSummaries', { namespace: ns, deployment: labelled });
    expect(result.pods).toHaveLength(2);
    expect(result.pods.every((p) => p.name.startsWith(`${labelled}-`))).toBe(true);
    // The app= convention would have found nothing.
    expect((await h.run('listPodSummaries', { namespace: ns, labelSelector: `app=${labelled}` })).pods).toHaveLength(0);
    expect((await failureOf(h.run('listPodSummaries', { namespace: ns, deployment: labelled, labelSelector: 'tier=web' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('listPodSummaries', { namespace: ns, deployment: 'no-such-deployment' }))).message).toContain('deployments.apps/no-such-deployment');
    expect((await failureOf(h.run('listPodSummaries', { namespace: ns, deployment: 'Bad_Name' }))).type).toBe('InvalidInput');
  });

  test('events of an object and of the namespace since a time', async () => {
    const events = await h.run('getObjectEvents', { namespace: ns, kind: 'Pod', name: pod });
    expect(events.events.some((e) => e.reason === 'BackOff' && e.type === 'Warning')).toBe(true);
    const recent = await h.run('listNamespaceEvents', { namespace: ns, since, type: 'Warning' });
    expect(recent.events.some((e) => e.reason === 'BackOff' && e.object === `Pod/${pod}`)).toBe(true);
    const future = await h.run('listNamespaceEvents', { namespace: ns, since: new Date(Date.now() + 3_600_000).toISOString() });
    expect(future.events).toEqual([]);
    expect((await failureOf(h.run('getObjectEvents', { namespace: ns, kind: 'pod;x', name: pod }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('listNamespaceEvents', { namespace: ns, since: 'yesterday' }))).type).toBe('InvalidInput');
  });

  test('logs: tail, previous, capped; a missing pod is NotFound', async () => {
    // A container of its own: its first instance's last lines, a real OOM kill, then the next instance's lines.
    const logged = unique('kt-logs');
    cleanups.push(() => deleteDeployment(kc, logged));
    await scratchApp(kc, logged, { script: restartableScript() });
    const pod = (await readyPods(kc, ns, `app=${logged}`, 1))[0]!.metadata!.name!;
    await printInContainer(kc, ns, pod, ['previous run', 'OOM: killed']);
    await restartInContainer(kc, ns, pod, 'oom');
    const current = Array.from({ length: 50 }, (_, i) => `line ${i} ${i % 10 === 0 ? 'ERROR boom' : 'ok'}`);
    await printInContainer(kc, ns, pod, current);
    const tail = await h.run('getContainerLogs', { namespace: ns, pod, tailLines: 3 });
    expect(tail.text).toBe(`${current.slice(-3).join('\n')}\n`);
    expect(tail).toMatchObject({ lines: 3, truncated: false, previous: false });
    const previous = await h.run('getContainerLogs', { namespace: ns, pod, container: 'app', previous: true });
    expect(previous.text).toBe('previous run\nOOM: killed\n');
    const capped = await h.run('getContainerLogs', { namespace: ns, pod, maxBytes: 40 });
    expect(capped.truncated).toBe(true);
    expect(capped.bytes).toBeLessThanOrEqual(40);
    expect(capped.text.endsWith(`${current.at(-1)}\n`)).toBe(true);
    expect((await failureOf(h.run('getContainerLogs', { namespace: ns, pod: 'no-such-pod' }))).type).toBe('NotFound');
    expect((await failureOf(h.run('getContainerLogs', { namespace: ns }))).type).toBe('InvalidInput');
    const byDeployment = await h.run('getContainerLogs', { namespace: ns, deployment: 'short-drama-app', tailLines: 100 });
    expect(byDeployment.pod).toMatch(/^short-drama-app-/);
    expect((await failureOf(h.run('getContainerLogs', { namespace: ns, pod, tailLines: -1 }))).type).toBe('InvalidInput');
  });

  test('a scratch namespace is allowed only through the harness allowlist', async () => {
    const scratch = await scratchNamespace(kc, 'kt-acts');
    cleanups.push(scratch.remove);
    const own = activityHarness({ ...asAdmin(), ALLOWED_NAMESPACES: `${ns},${scratch.name}` });
    try {
      expect((await own.run('listPodSummaries', { namespace: scratch.name })).pods).toEqual([]);
    } finally {
      await own.close();
    }
    expect((await failureOf(h.run('listPodSummaries', { namespace: scratch.name }))).type).toBe('Refused');
  });
});

describe('services, ingress, HPA, PVCs, usage', () => {
  test('services with endpoint counts', async () => {
    const { services } = await h.run('listServices', { namespace: ns });
    const app = services.find((s) => s.name === 'short-drama-app')!;
    expect(app.readyEndpoints).toBe(2);
    expect(services.find((s) => s.name === 'postgres')!.ports[0]).toMatch(/5432\/TCP/);
  });

  test('ingress hosts, TLS and annotations; a missing one is NotFound', async () => {
    const { ingresses } = await h.run('listIngresses', { namespace: ns, name: 'app-ingress' });
    expect(ingresses[0]!.hosts).toContain('app.short-drama.example');
    expect(ingresses[0]!.tls.length).toBeGreaterThan(0);
    expect(typeof ingresses[0]!.annotations).toBe('object');
    expect((await failureOf(h.run('listIngresses', { namespace: ns, name: 'nope' }))).type).toBe('NotFound');
  });

  test('HPA current/desired/min/max', async () => {
    const { autoscalers } = await h.run('listHorizontalPodAutoscalers', { namespace: ns });
    expect(autoscalers.find((a) => a.name === 'short-drama-app')).toMatchObject({ minReplicas: 2, maxReplicas: 6, target: 'Deployment/short-drama-app' });
    expect((await failureOf(h.run('listHorizontalPodAutoscalers', { namespace: ns, name: 'nope' }))).type).toBe('NotFound');
  });

  test('PVCs with StorageClass expansion', async () => {
    const { claims } = await h.run('listPersistentVolumeClaims', { namespace: ns });
    expect(claims.find((c) => c.name === 'postgres-pvc')).toMatchObject({ phase: 'Bound', capacity: '10Gi', storageClass: 'expandable', allowsExpansion: true });
    expect(claims.find((c) => c.name === 'redis-data')).toMatchObject({ storageClass: 'fixed', allowsExpansion: false });
    expect((await failureOf(h.run('listPersistentVolumeClaims', { namespace: 'kube-system' }))).type).toBe('Refused');
  });

  test('pod and node usage against requests/limits', async () => {
    const pods = await h.run('getPodUsage', { namespace: ns });
    expect(pods.available).toBe(true);
    if (pods.available) expect(Array.isArray(pods.pods)).toBe(true);
    // metrics-server has node numbers only after its first scrapes (10 s apart) on a freshly started cluster.
    let nodes = await h.run('getNodeUsage');
    const { nodeName } = nodeNames(layout);
    const hasNode = () => nodes.available && nodes.nodes.some((n) => n.name === nodeName && n.allocatableCpuMillicores! > 0 && n.memoryBytes > 0);
    await waitUntil(`node usage of the real node ${nodeName}`, async () => hasNode() || ((nodes = await h.run('getNodeUsage')), hasNode()), 90_000);
    expect(nodes.available).toBe(true);
    // Forbidden is an error, not "unavailable".
    expect((await failureOf(ro.run('getNodeUsage'))).type).toBe('Forbidden');
    expect((await failureOf(ro.run('getPodUsage', { namespace: 'default' }))).type).toBe('Forbidden');
    expect((await failureOf(h.run('getPodUsage', { namespace: 'kube-system' }))).type).toBe('Refused');
  });

  test('usage of a pod against its requests and limits (as metrics-server reads it from the kubelet)', async () => {
    const dep = unique('kt-usage');
    cleanups.push(() => deleteDeployment(kc, dep));
    // The app holding 100 MiB (touched) in a container with requests 64Mi and limits 256Mi.
    await scratchApp(kc, dep, { env: { ALLOCATE_MEMORY_MIB: '100' } });
    await readyPods(kc, ns, `app=${dep}`, 1);
    let usage: Awaited<ReturnType<ActivityHarness['activities']['getPodUsage']>> | undefined;
    // metrics-server scrapes every 10 s: until then the new pod has no numbers.
    await waitUntil(
      `metrics-server to report the usage of ${dep}`,
      async () => {
        usage = await h.run('getPodUsage', { namespace: ns, deployment: dep });
        return usage.available && (usage.pods[0]?.containers[0]?.memoryBytes.usage ?? 0) >= 100 * 2 ** 20;
      },
      90_000,
    );
    if (!usage?.available) throw new Error('unavailable');
    const { cpuMillicores: cpu, memoryBytes: memory } = usage.pods[0]!.containers[0]!;
    expect({ cpu: [cpu.request, cpu.limit], memory: [memory.request, memory.limit] }).toEqual({ cpu: [10, 500], memory: [64 * 2 ** 20, 256 * 2 ** 20] });
    // The ratios are the real numbers' own.
    const percent = (part: number, whole: number) => Math.round((part / whole) * 1000) / 10;
    expect([memory.percentOfRequest, memory.percentOfLimit, cpu.percentOfLimit]).toEqual([percent(memory.usage, 64 * 2 ** 20), percent(memory.usage, 256 * 2 ** 20), percent(cpu.usage, 500)]);
    expect(memory.usage).toBeLessThan(256 * 2 ** 20);
  });

  test('usage: a cluster without the metrics API gives available: false, not an error', async () => {
    const server: Server = createServer((_req, res) => {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'the server could not find the requested resource', reason: 'NotFound', code: 404 }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const fake = new KubeConfig();
      fake.loadFromOptions({
        clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }],
        users: [{ name: 'u' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const acts = createKubernetesActivities({ kube: fake, allowedNamespaces: [ns] });
      const env = new MockActivityEnvironment();
      expect(await env.run(acts.getPodUsage, { namespace: ns })).toMatchObject({ available: false });
      expect(await env.run(acts.getNodeUsage)).toMatchObject({ available: false, reason: expect.stringMatching(/metrics/) });
    } finally {
      server.close();
    }
  });
});

describe('PVC expansion', () => {
  const claim = unique('kt-pvc');
  beforeAll(async () => {
    cleanups.push(() => deleteBoundClaim(kc, claim));
    await scratchBoundClaim(kc, claim, 'expandable', '1Gi');
  });

  test('dry run, expand, second run no change', async () => {
    const dry = await h.run('expandPersistentVolumeClaim', { namespace: ns, name: claim, size: '2Gi', dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true, before: { requested: '1Gi' }, after: { requested: '2Gi' } });
    expect((await core.readNamespacedPersistentVolumeClaim(claim, ns)).body.spec?.resources?.requests?.storage).toBe('1Gi');
    const done = await h.run('expandPersistentVolumeClaim', { namespace: ns, name: claim, size: '2Gi' });
    expect(done).toMatchObject({ changed: true, before: { requested: '1Gi' }, after: { requested: '2Gi' } });
    const again = await h.run('expandPersistentVolumeClaim', { namespace: ns, name: claim, size: '2Gi' });
    expect(again).toMatchObject({ changed: false, message: 'no change' });
    expect((await core.readNamespacedPersistentVolumeClaim(claim, ns)).body.spec?.resources?.requests?.storage).toBe('2Gi');
  });

  test('refused on a StorageClass without expansion; shrinking and bad sizes are invalid', async () => {
    const f = await failureOf(h.run('expandPersistentVolumeClaim', { namespace: ns, name: 'redis-data', size: '20Gi' }));
    expect(f.type).toBe('Refused');
    expect(f.message).toMatch(/StorageClass fixed does not allow volume expansion/);
    expect((await core.readNamespacedPersistentVolumeClaim('redis-data', ns)).body.spec?.resources?.requests?.storage).toBe('10Gi');
    expect((await failureOf(h.run('expandPersistentVolumeClaim', { namespace: ns, name: claim, size: '1Mi' }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('expandPersistentVolumeClaim', { namespace: ns, name: claim, size: 'lots' }))).type).toBe('InvalidInput');
  });
});

describe('exec', () => {
  test('runs a command in a deployment pod with exit code, timeout and output cap', async () => {
    const ok = await h.run('execInPod', { namespace: ns, deployment: 'short-drama-app', command: ['echo', 'hello'] });
    expect(ok).toMatchObject({ exitCode: 0, stdout: 'hello\n', timedOut: false, truncated: false });
    const fail = await h.run('execInPod', { namespace: ns, deployment: 'short-drama-app', command: ['sh', '-c', 'echo oops >&2; exit 3'] });
    expect(fail).toMatchObject({ exitCode: 3, stderr: 'oops\n' });
    const big = await h.run('execInPod', { namespace: ns, pod: ok.pod, command: ['sh', '-c', 'head -c 100000 /dev/zero | tr "\\0" x'], maxOutputBytes: 1000 });
    expect(big.truncated).toBe(true);
    expect(big.stdout.length).toBe(1000);
    const slow = await h.run('execInPod', { namespace: ns, pod: ok.pod, command: ['sleep', '30'], timeoutSeconds: 1 });
    expect(slow).toMatchObject({ timedOut: true, exitCode: null });
  });

  test('a cancelled exec stops and surfaces as a cancellation', async () => {
    const own = activityHarness(asAdmin());
    try {
      const started = Date.now();
      const running = own.run('execInPod', { namespace: ns, deployment: 'short-drama-app', command: ['sleep', '30'], timeoutSeconds: 60 });
      own.environment.cancel();
      await expect(running).rejects.toBeInstanceOf(CancelledFailure);
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await own.close();
    }
  });

  test('refusals: no command, missing pod, forbidden exec', async () => {
    expect((await failureOf(h.run('execInPod', { namespace: ns, deployment: 'short-drama-app', command: [] }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('execInPod', { namespace: ns, pod: 'no-such-pod', command: ['true'] }))).type).toBe('NotFound');
    const f = await failureOf(ro.run('execInPod', { namespace: ns, deployment: 'short-drama-app', command: ['true'] }));
    expect(f.type).toBe('Forbidden');
    expect(f.message).toMatch(/exec in namespace short-drama-prod/);
  });
});

describe('rollouts', () => {
  // The scratch apps run the seeded release's image; a new release changes it to the other one.
  const otherImage = appImage(appReleases[0], testbedRealNode());
  let dep: string;
  beforeAll(async () => {
    dep = unique('kt-roll');
    cleanups.push(() => deleteDeployment(kc, dep));
    await scratchApp(kc, dep, { script: restartableScript() });
  });
  const template = async (name: string) => (await apps.readNamespacedDeployment(name, ns)).body.spec!.template;

  test('history of the seeded deployment from ReplicaSet revisions; a missing deployment is NotFound', async () => {
    const history = await h.run('getRolloutHistory', { namespace: ns, deployment: 'short-drama-app' });
    expect(history.revisions.length).toBeGreaterThanOrEqual(2);
    expect(history.revisions.filter((r) => r.current)).toHaveLength(1);
    expect((await failureOf(h.run('getRolloutHistory', { namespace: ns, deployment: 'nope' }))).type).toBe('NotFound');
  });

  test('rollback gives the same template as kubectl rollout undo; dry run and second run change nothing', async () => {
    const ours = unique('kt-undo-a');
    const theirs = unique('kt-undo-b');
    cleanups.push(
      () => deleteDeployment(kc, ours),
      () => deleteDeployment(kc, theirs),
    );
    // Same labels-by-name scheme for both, so the templates compare after renaming.
    for (const name of [ours, theirs]) {
      await scratchApp(kc, name, { script: restartableScript() });
      await patchDeployment(kc, ns, name, { spec: { template: { spec: { containers: [{ name: 'app', image: otherImage }] } } } });
      await newRolloutRevision(kc, ns, name, '00000000-0000-4000-8000-000000000001');
    }
    const beforeTemplate = await template(ours);
    const dry = await h.run('rollbackDeployment', { namespace: ns, deployment: ours, dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, changed: true, toRevision: 2 });
    expect(await template(ours)).toEqual(beforeTemplate);

    const result = await h.run('rollbackDeployment', { namespace: ns, deployment: ours });
    expect(result).toMatchObject({ changed: true, toRevision: 2, after: { images: [`app=${otherImage}`] } });
    const kubectl = testbedEnv().TESTBED_KUBECTL!;
    execFileSync(kubectl, ['--kubeconfig', testbedEnv().TESTBED_KUBECONFIG_ADMIN!, 'rollout', 'undo', `deployment/${theirs}`, '-n', ns]);
    // The controller renumbers the revision after the patch: compare once both rollouts are done.
    await waitForRollout(kc, ns, ours);
    await waitForRollout(kc, ns, theirs);
    const a = await apps.readNamespacedDeployment(ours, ns);
    const b = await apps.readNamespacedDeployment(theirs, ns);
    expect(JSON.stringify(a.body.spec!.template).split(ours).join('X')).toBe(JSON.stringify(b.body.spec!.template).split(theirs).join('X'));
    expect(a.body.metadata?.annotations).toEqual(b.body.metadata?.annotations);

    // The rolled-back ReplicaSet now carries the newest revision number: asking for it again changes nothing.
    const now = Number(a.body.metadata?.annotations?.['deployment.kubernetes.io/revision']);
    expect(now).toBeGreaterThan(3);
    const again = await h.run('rollbackDeployment', { namespace: ns, deployment: ours, toRevision: now });
    expect(again).toMatchObject({ changed: false });
    expect(again.message).toMatch(/no change/);
    expect(await template(ours)).toEqual(a.body.spec!.template);
    expect((await failureOf(h.run('rollbackDeployment', { namespace: ns, deployment: ours, toRevision: 99 }))).type).toBe('NotFound');
    // A retried attempt of "undo to previous" (heartbeat of the first attempt) does not flip back.
    const progress = h.heartbeats.filter((b) => (b as { rollbackTarget?: { deployment: string } }).rollbackTarget?.deployment === ours).at(-1);
    expect(progress).toBeDefined();
    const retry = activityHarness(asAdmin(), progress);
    try {
      expect(await retry.run('rollbackDeployment', { namespace: ns, deployment: ours })).toMatchObject({ changed: false });
    } finally {
      await retry.close();
    }
    expect(await template(ours)).toEqual(a.body.spec!.template);
  });

  test('a retried rollback to a revision by number whose first attempt patched but whose heartbeat was lost (worker killed): no change, no NotFound', async () => {
    const name = unique('kt-undo-c');
    cleanups.push(() => deleteDeployment(kc, name));
    await scratchApp(kc, name, { script: restartableScript() });
    await patchDeployment(kc, ns, name, { spec: { template: { spec: { containers: [{ name: 'app', image: otherImage }] } } } });
    await waitForRollout(kc, ns, name);
    expect(await h.run('rollbackDeployment', { namespace: ns, deployment: name, toRevision: 1 })).toMatchObject({ changed: true, toRevision: 1 });
    // The controller renumbers the rolled-back ReplicaSet (revision 1 becomes 3): revision 1 is now only in its revision history.
    await waitForRollout(kc, ns, name);
    const rolledBack = (await apps.readNamespacedDeployment(name, ns)).body;
    expect(rolledBack.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('3');
    const retry = activityHarness(asAdmin(), undefined, { attempt: 2 });
    try {
      const again = await retry.run('rollbackDeployment', { namespace: ns, deployment: name, toRevision: 1 });
      // Found by its earlier number, reported by its number now.
      expect(again).toMatchObject({ changed: false, toRevision: 3 });
      expect(again.message).toMatch(/no change \(current template already matches revision 3\)/);
    } finally {
      await retry.close();
    }
    const after = (await apps.readNamespacedDeployment(name, ns)).body;
    expect(after.metadata?.generation).toBe(rolledBack.metadata?.generation);
    expect(after.spec!.template).toEqual(rolledBack.spec!.template);
  });

  test('restart with a caller-given restartedAt, wait for the rollout; a retry changes nothing', async () => {
    const restartedAt = new Date().toISOString();
    const dry = await h.run('restartRollout', { namespace: ns, deployment: dep, restartedAt, dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true, after: { restartedAt } });
    expect((await template(dep)).metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']).toBeUndefined();
    const done = await h.run('restartRollout', { namespace: ns, deployment: dep, restartedAt });
    expect(done).toMatchObject({ changed: true, dryRun: false, after: { restartedAt } });
    const waited = await h.run('waitForRolloutComplete', { namespace: ns, deployment: dep, timeoutSeconds: 60, pollIntervalMs: 200 });
    expect(waited.complete).toBe(true);
    const revision = (await apps.readNamespacedDeployment(dep, ns)).body.metadata?.annotations?.['deployment.kubernetes.io/revision'];
    const again = await h.run('restartRollout', { namespace: ns, deployment: dep, restartedAt });
    expect(again).toMatchObject({ changed: false, message: 'no change' });
    expect((await apps.readNamespacedDeployment(dep, ns)).body.metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe(revision);
    expect((await failureOf(h.run('restartRollout', { namespace: ns, deployment: dep, restartedAt: 'now' }))).type).toBe('InvalidInput');
  });

  test('a single-writer volume under RollingUpdate: restart, rollback, new resources and more replicas are refused (dry run too) and nothing changes; Recreate may roll', async () => {
    const rolling = unique('kt-rwo-rolling');
    cleanups.push(() => deleteSingleWriter(kc, rolling));
    await scratchSingleWriter(kc, rolling);
    await newRolloutRevision(kc, ns, rolling); // a revision to roll back to
    const before = await apps.readNamespacedDeployment(rolling, ns);
    const where = `deployments.apps/${rolling} in namespace ${ns}`;
    const why = `its pods mount persistentvolumeclaims/${rolling} (ReadWriteOnce) and strategy RollingUpdate would start the new pod before the old one stops; set strategy Recreate, or scale it to 0 first`;
    for (const dryRun of [true, false]) {
      const refusals = await Promise.all([
        failureOf(h.run('restartRollout', { namespace: ns, deployment: rolling, restartedAt: new Date().toISOString(), dryRun })),
        failureOf(h.run('rollbackDeployment', { namespace: ns, deployment: rolling, dryRun })),
        failureOf(h.run('setContainerResources', { namespace: ns, deployment: rolling, container: 'db', limits: { memory: '512Mi' }, dryRun })),
        failureOf(h.run('scaleDeployment', { namespace: ns, deployment: rolling, replicas: 2, dryRun })),
      ]);
      expect(refusals.map((f) => [f.type, f.nonRetryable, f.message])).toEqual([
        ['Refused', true, `a rolling restart of ${where} is refused: ${why}`],
        ['Refused', true, `a rollback of ${where} is refused: ${why}`],
        ['Refused', true, `new resources of ${where} is refused: ${why}`],
        ['Refused', true, `scaling of ${where} to 2 replicas is refused: its pods mount persistentvolumeclaims/${rolling} (ReadWriteOnce), which only one server may write`],
      ]);
    }
    const after = await apps.readNamespacedDeployment(rolling, ns);
    expect([after.body.metadata?.generation, after.body.spec?.replicas]).toEqual([before.body.metadata?.generation, 1]);
    expect(await h.run('restartMethod', { namespace: ns, deployment: rolling })).toMatchObject({
      method: 'scale-to-zero',
      strategy: 'RollingUpdate',
      replicas: 1,
      singleWriterClaims: [rolling],
    });
    expect(await h.run('restartMethod', { namespace: ns, deployment: dep })).toMatchObject({ method: 'rollout', singleWriterClaims: [] });
    // At 0 nothing runs, so a new template may be written.
    await h.run('scaleDeployment', { namespace: ns, deployment: rolling, replicas: 0 });
    expect(await h.run('setContainerResources', { namespace: ns, deployment: rolling, container: 'db', limits: { memory: '512Mi' }, dryRun: true })).toMatchObject({ changed: true });
    // The seeded database stops its old pod before it starts a new one (Recreate): a rolling restart is fine.
    expect(await h.run('restartMethod', { namespace: ns, deployment: 'postgres' })).toMatchObject({ method: 'rollout', strategy: 'Recreate', singleWriterClaims: ['postgres-pvc'] });
    expect(await h.run('restartRollout', { namespace: ns, deployment: 'postgres', restartedAt: new Date().toISOString(), dryRun: true })).toMatchObject({ changed: true, dryRun: true });
    // More than one server on its volume is refused whatever the strategy.
    expect((await failureOf(h.run('scaleDeployment', { namespace: ns, deployment: 'postgres', replicas: 3, dryRun: true }))).type).toBe('Refused');
  });

  test('why: a rolling restart done by hand on a ReadWriteOnce deployment runs two pods on the volume at once (watched)', async () => {
    const name = unique('kt-rwo');
    cleanups.push(() => deleteSingleWriter(kc, name));
    await scratchSingleWriter(kc, name);
    await readyPods(kc, ns, `app=${name}`, 1);
    expect(await h.run('restartMethod', { namespace: ns, deployment: name })).toMatchObject({ method: 'scale-to-zero', singleWriterClaims: [name] });
    const pods = await watchPods(kc, ns, `app=${name}`);
    await apps.patchNamespacedDeployment(
      name,
      ns,
      { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } },
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      {
        headers: { 'Content-Type': 'application/strategic-merge-patch+json' },
      },
    );
    await waitUntil(
      'the rolling restart replaced the pod',
      async () => pods.seen.size === 2 && (await core.listNamespacedPod(ns, undefined, undefined, undefined, undefined, `app=${name}`)).body.items.length === 1,
    );
    pods.stop();
    expect(pods.maxAtOnce()).toBe(2);
  });

  test('wait until no pod of a deployment exists: at once when none, the deadline names the pods left', async () => {
    const idle = unique('kt-nopods');
    cleanups.push(() => deleteDeployment(kc, idle));
    await scratchApp(kc, idle, { script: restartableScript() });
    const left = await failureOf(h.run('waitForNoPods', { namespace: ns, deployment: idle, timeoutSeconds: 1, pollIntervalMs: 200 }));
    expect([left.type, left.message]).toEqual(['RolloutIncomplete', expect.stringMatching(new RegExp(`^pods of deployments.apps/${idle} in namespace ${ns} still exist after 1s: ${idle}-`))]);
    await h.run('scaleDeployment', { namespace: ns, deployment: idle, replicas: 0 });
    expect(await h.run('waitForNoPods', { namespace: ns, deployment: idle, timeoutSeconds: 60, pollIntervalMs: 200 })).toEqual({ waitedMs: expect.any(Number) });
    expect((await core.listNamespacedPod(ns, undefined, undefined, undefined, undefined, `app=${idle}`)).body.items).toEqual([]);
  });

  test('wait for a rollout: deadline with heartbeats, and cancellation', async () => {
    const stuck = unique('kt-stuck');
    cleanups.push(() => deleteDeployment(kc, stuck));
    await scratchApp(kc, stuck, { script: restartableScript() });
    // Pods that cannot be scheduled: the rollout never completes.
    await patchDeployment(kc, ns, stuck, { spec: { template: { spec: { nodeSelector: { type: 'nowhere' } } } } });
    const beats = h.heartbeats.length;
    const f = await failureOf(h.run('waitForRolloutComplete', { namespace: ns, deployment: stuck, timeoutSeconds: 2, pollIntervalMs: 200 }));
    expect(f.type).toBe('Transient');
    expect(f.message).toMatch(/not complete after 2s/);
    expect(h.heartbeats.length).toBeGreaterThan(beats);
    const waiting = h.run('waitForRolloutComplete', { namespace: ns, deployment: stuck, timeoutSeconds: 60, pollIntervalMs: 200 });
    const n = h.heartbeats.length;
    await waitFor(() => h.heartbeats.length > n);
    h.environment.cancel();
    await expect(waiting).rejects.toBeInstanceOf(CancelledFailure);
    // A cancelled environment stays cancelled: a fresh harness for the next tests.
    const old = h;
    h = activityHarness(asAdmin());
    await old.close();
  });

  test('scale: dry run, change, second run no change, bad input', async () => {
    const dry = await h.run('scaleDeployment', { namespace: ns, deployment: dep, replicas: 2, dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true, before: { replicas: 1 }, after: { replicas: 2 } });
    expect((await apps.readNamespacedDeployment(dep, ns)).body.spec?.replicas).toBe(1);
    expect(await h.run('scaleDeployment', { namespace: ns, deployment: dep, replicas: 2 })).toMatchObject({ changed: true, after: { replicas: 2 } });
    expect(await h.run('scaleDeployment', { namespace: ns, deployment: dep, replicas: 2 })).toMatchObject({ changed: false, message: 'no change' });
    expect((await apps.readNamespacedDeployment(dep, ns)).body.spec?.replicas).toBe(2);
    expect((await failureOf(h.run('scaleDeployment', { namespace: ns, deployment: dep, replicas: -1 }))).type).toBe('InvalidInput');
  });

  test('set container resources: dry run, change, second run no change, bad input', async () => {
    const input = { namespace: ns, deployment: dep, container: 'app', limits: { memory: '384Mi' }, requests: { memory: '0.25Gi' } };
    const dry = await h.run('setContainerResources', { ...input, dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true, before: { limits: { memory: '256Mi' } }, after: { limits: { memory: '384Mi', cpu: '500m' } } });
    expect((await template(dep)).spec!.containers[0]!.resources?.limits?.memory).toBe('256Mi');
    const done = await h.run('setContainerResources', input);
    expect(done).toMatchObject({ changed: true, after: { limits: { memory: '384Mi' }, requests: { memory: '256Mi', cpu: '10m' } } });
    expect(await h.run('setContainerResources', input)).toMatchObject({ changed: false, message: 'no change' });
    expect((await failureOf(h.run('setContainerResources', { ...input, limits: { memory: 'a lot' } }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('setContainerResources', { ...input, container: 'sidecar' }))).type).toBe('NotFound');
  });

  test('annotations: set and remove with previous values; dry run; second run no change', async () => {
    const set = { 'runbook.example/limit-rps': '50' };
    const dry = await h.run('setAnnotations', { namespace: ns, kind: 'Deployment', name: dep, set, dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true, before: { 'runbook.example/limit-rps': null }, after: set });
    expect((await apps.readNamespacedDeployment(dep, ns)).body.metadata?.annotations?.['runbook.example/limit-rps']).toBeUndefined();
    expect(await h.run('setAnnotations', { namespace: ns, kind: 'Deployment', name: dep, set })).toMatchObject({ changed: true, after: set });
    expect(await h.run('setAnnotations', { namespace: ns, kind: 'Deployment', name: dep, set })).toMatchObject({ changed: false, message: 'no change' });
    const removed = await h.run('setAnnotations', { namespace: ns, kind: 'Deployment', name: dep, remove: ['runbook.example/limit-rps'] });
    expect(removed).toMatchObject({ changed: true, before: set, after: { 'runbook.example/limit-rps': null } });
    expect(await h.run('setAnnotations', { namespace: ns, kind: 'Deployment', name: dep, remove: ['runbook.example/limit-rps'] })).toMatchObject({ changed: false });
    expect((await failureOf(h.run('setAnnotations', { namespace: ns, kind: 'Node', name: dep, set }))).type).toBe('InvalidInput');
    expect((await failureOf(h.run('setAnnotations', { namespace: ns, kind: 'Ingress', name: 'nope', set }))).type).toBe('NotFound');
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('certificates', () => {
  const name = unique('kt-cert');
  /** A Certificate for `dns`; issued by the sandbox's CA ClusterIssuer, or never while it names an issuer that does not exist. */
  const manifest = (dns: string, issuer = 'letsencrypt-missing') => ({
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name },
    spec: { secretName: `${name}-tls`, dnsNames: [dns], duration: '1440h', issuerRef: { name: issuer, kind: 'ClusterIssuer' } },
  });
  beforeAll(() => {
    cleanups.push(() => custom.deleteNamespacedCustomObject('cert-manager.io', 'v1', ns, 'certificates', name).catch(() => undefined));
    cleanups.push(() => core.deleteNamespacedSecret(`${name}-tls`, ns).catch(() => undefined));
  });

  test('get the seeded certificate; a missing one is NotFound', async () => {
    const cert = await h.run('getCertificate', { namespace: ns, name: 'app-tls-cert' });
    expect(cert).toMatchObject({ name: 'app-tls-cert', ready: true, secretName: 'app-tls-cert', issuer: 'ClusterIssuer/letsencrypt-prod' });
    expect((await failureOf(h.run('getCertificate', { namespace: ns, name: 'nope' }))).type).toBe('NotFound');
  });

  test('wait for Ready (heartbeats), deadline, then delete: dry run, delete, second run no change', async () => {
    await h.run('applyManifest', { namespace: ns, manifest: manifest('scratch.example') });
    const f = await failureOf(h.run('waitForCertificateReady', { namespace: ns, name, timeoutSeconds: 1, pollIntervalMs: 100 }));
    expect(f.type).toBe('Transient');
    const n = h.heartbeats.length;
    const waiting = h.run('waitForCertificateReady', { namespace: ns, name, timeoutSeconds: 60, pollIntervalMs: 100 });
    await waitFor(() => h.heartbeats.length > n);
    // The issuer fixed: cert-manager issues it for 60 days.
    await h.run('applyManifest', { namespace: ns, manifest: manifest('scratch.example', 'letsencrypt-prod') });
    const ready = await waiting;
    expect(ready).toMatchObject({ ready: true, name });
    expect(ready.daysUntilExpiry).toBeGreaterThanOrEqual(59);

    const dry = await h.run('deleteCertificate', { namespace: ns, name, dryRun: true });
    expect(dry).toMatchObject({ changed: true, dryRun: true });
    expect((await h.run('getCertificate', { namespace: ns, name })).name).toBe(name);
    const { uid } = await h.run('getCertificate', { namespace: ns, name });
    expect(await h.run('deleteCertificate', { namespace: ns, name, uid })).toMatchObject({ changed: true, before: { ready: true, uid } });
    expect(await h.run('deleteCertificate', { namespace: ns, name })).toMatchObject({ changed: false });
    expect((await failureOf(h.run('getCertificate', { namespace: ns, name }))).type).toBe('NotFound');
    // Made again under the same name (as ingress-shim does): a retried delete of the old one leaves it.
    await h.run('applyManifest', { namespace: ns, manifest: manifest('scratch.example', 'letsencrypt-prod') });
    const again = await h.run('deleteCertificate', { namespace: ns, name, uid });
    expect(again).toMatchObject({
      changed: false,
      message: expect.stringMatching(new RegExp(`^no change \\(certificates\\.cert-manager\\.io/${name} ${uid} is already deleted; the one there now, \\S+, was made after it\\)$`)),
    });
    expect((await h.run('getCertificate', { namespace: ns, name })).uid).not.toBe(uid);
    expect((await failureOf(h.run('deleteCertificate', { namespace: 'kube-system', name }))).type).toBe('Refused');
  });
});

describe('apply, secrets, RBAC, snapshot', () => {
  const cm = unique('kt-cm');
  const secret = unique('kt-secret');
  const sa = unique('kt-sa');
  const value = `s3cr3t-${unique('v')}`;
  beforeAll(() => {
    cleanups.push(
      () => core.deleteNamespacedConfigMap(cm, ns),
      () => core.deleteNamespacedSecret(secret, ns),
      () => core.deleteNamespacedServiceAccount(sa, ns),
      () => kc.makeApiClient(RbacAuthorizationV1Api).deleteNamespacedRole(sa, ns),
      () => kc.makeApiClient(RbacAuthorizationV1Api).deleteNamespacedRoleBinding(sa, ns),
    );
  });

  test('server-side apply: dry run, create, unchanged, configured; refusals', async () => {
    const manifest = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${cm}\ndata:\n  mode: normal\n`;
    expect(await h.run('applyManifest', { namespace: ns, manifest, dryRun: true })).toMatchObject({ action: 'created', dryRun: true });
    await expect(core.readNamespacedConfigMap(cm, ns)).rejects.toMatchObject({ statusCode: 404 });
    expect(await h.run('applyManifest', { namespace: ns, manifest })).toMatchObject({ action: 'created', changed: true });
    const { body } = await core.readNamespacedConfigMap(cm, ns);
    expect(body.metadata?.managedFields?.some((m) => m.manager === 'runbook-automation' && m.operation === 'Apply')).toBe(true);
    expect(await h.run('applyManifest', { namespace: ns, manifest })).toMatchObject({ action: 'unchanged', changed: false });
    expect((await core.readNamespacedConfigMap(cm, ns)).body.metadata?.resourceVersion).toBe(body.metadata?.resourceVersion);
    expect(await h.run('applyManifest', { namespace: ns, manifest: manifest.replace('normal', 'maintenance'), dryRun: true })).toMatchObject({ action: 'configured', dryRun: true });
    expect((await core.readNamespacedConfigMap(cm, ns)).body.data).toEqual({ mode: 'normal' });
    // A field another manager owns: 409 Conflict, unless forced.
    await core.patchNamespacedConfigMap(cm, ns, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm }, data: { owner: 'other' } }, undefined, undefined, 'someone-else', undefined, undefined, {
      headers: { 'Content-Type': 'application/apply-patch+yaml' },
    });
    const taken = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm }, data: { mode: 'normal', owner: 'us' } };
    expect((await failureOf(h.run('applyManifest', { namespace: ns, manifest: taken }))).type).toBe('Conflict');
    expect(await h.run('applyManifest', { namespace: ns, manifest: taken, force: true })).toMatchObject({ action: 'configured', changed: true });
    expect(await h.run('applyManifest', { namespace: ns, manifest: taken, force: true })).toMatchObject({ action: 'unchanged', changed: false });
    expect((await failureOf(h.run('applyManifest', { namespace: ns, manifest: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } } }))).type).toBe('Refused');
    expect((await failureOf(h.run('applyManifest', { namespace: ns, manifest: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm, namespace: 'default' } } }))).type).toBe('Refused');
    expect((await failureOf(h.run('applyManifest', { namespace: ns, manifest: 'kind: [' }))).type).toBe('InvalidInput');
  });

  test('secret key: dry run, create, no change, update; the value never returned nor in errors', async () => {
    const dry = await h.run('setSecretKey', { namespace: ns, name: secret, key: 'password', value, dryRun: true });
    expect(dry).toMatchObject({ created: true, changed: true, dryRun: true });
    await expect(core.readNamespacedSecret(secret, ns)).rejects.toMatchObject({ statusCode: 404 });
    const created = await h.run('setSecretKey', { namespace: ns, name: secret, key: 'password', value });
    expect(created).toMatchObject({ created: true, changed: true, keys: ['password'] });
    const again = await h.run('setSecretKey', { namespace: ns, name: secret, key: 'password', value });
    expect(again).toMatchObject({ changed: false, message: 'no change' });
    const updated = await h.run('setSecretKey', { namespace: ns, name: secret, key: 'password', value: `${value}-2` });
    expect(updated).toMatchObject({ changed: true, created: false });
    expect(Buffer.from((await core.readNamespacedSecret(secret, ns)).body.data!.password!, 'base64').toString()).toBe(`${value}-2`);
    for (const r of [dry, created, again, updated]) expect(JSON.stringify(r)).not.toContain(value.slice(0, 10));
    const bad = await failureOf(h.run('setSecretKey', { namespace: ns, name: secret, key: 'bad key', value }));
    expect(bad.type).toBe('InvalidInput');
    expect(bad.message).not.toContain(value);
    const forbidden = await failureOf(ro.run('setSecretKey', { namespace: ns, name: secret, key: 'password', value }));
    expect(forbidden.type).toBe('Forbidden');
    expect(forbidden.message).not.toContain(value);
  });

  test('ServiceAccount, Role, RoleBinding idempotently; wildcards refused', async () => {
    const input = {
      namespace: ns,
      serviceAccount: sa,
      role: sa,
      roleBinding: sa,
      rules: [{ apiGroups: ['', 'apps'], resources: ['pods', 'services', 'deployments'], verbs: ['get', 'list', 'watch'] }],
    };
    const dry = await h.run('ensureServiceAccountAccess', { ...input, dryRun: true });
    expect(dry.objects.map((o) => o.action)).toEqual(['created', 'created', 'created']);
    await expect(core.readNamespacedServiceAccount(sa, ns)).rejects.toMatchObject({ statusCode: 404 });
    const done = await h.run('ensureServiceAccountAccess', input);
    expect(done.changed).toBe(true);
    const again = await h.run('ensureServiceAccountAccess', input);
    expect(again.changed).toBe(false);
    expect(again.objects.map((o) => o.action)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    const binding = await kc.makeApiClient(RbacAuthorizationV1Api).readNamespacedRoleBinding(sa, ns);
    expect(binding.body.subjects?.[0]).toMatchObject({ kind: 'ServiceAccount', name: sa });
    expect((await failureOf(h.run('ensureServiceAccountAccess', { ...input, rules: [{ apiGroups: [''], resources: ['*'], verbs: ['get'] }] }))).type).toBe('Refused');
    expect((await failureOf(ro.run('ensureServiceAccountAccess', input))).type).toBe('Forbidden');
  });

  test('namespace snapshot: workloads, ConfigMaps, PVCs, Ingress; Secrets by name and keys only', async () => {
    const snap = await h.run('snapshotNamespaceConfig', { namespace: ns });
    expect(snap.deployments.map((d) => d.name)).toEqual(expect.arrayContaining(['short-drama-app', 'postgres', 'redis']));
    expect(snap.persistentVolumeClaims.map((p) => p.name)).toEqual(expect.arrayContaining(['postgres-pvc', 'redis-data']));
    expect(snap.ingresses.find((i) => i.name === 'app-ingress')?.hosts).toContain('app.short-drama.example');
    expect(snap.secrets.find((s) => s.name === secret)).toEqual({ name: secret, type: 'Opaque', keys: ['password'] });
    const text = JSON.stringify(snap);
    expect(text).not.toContain(value);
    expect(text).not.toContain(Buffer.from(`${value}-2`).toString('base64'));
    expect((await failureOf(h.run('snapshotNamespaceConfig', { namespace: 'kube-system' }))).type).toBe('Refused');
  });
});
