import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { CoreV1Api } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { linesInWindow } from '../../activities/incident-evidence';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { failureOf } from '../helpers/failures';
import { deleteDeployment, restartableScript, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as ns } from '../helpers/kube-cluster';
import { printInContainer, readyPods, restartInContainer } from '../helpers/kube-pods';
import { waitUntil } from '../../scripts/testbed/processes';
import { testbedEnv, testbedS3 } from '../helpers/testbed';

/**
 * The evidence activities of postIncidentReview against the real control plane and SeaweedFS:
 * a scratch Deployment of three real pods on the test bed's node whose logs the test writes (as
 * their own output, stamped by the container runtime), a scratch Secret, and evidence under a
 * unique runbooks/test-… prefix; all deleted at the end.
 */
const env = testbedEnv();
const Bucket = env.S3_BUCKET!;
const s3 = testbedS3();
const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const folder = `test-incident-${randomUUID()}/`;
const minute = 60_000;

let h: ActivityHarness;
const deployment = unique('pir-acts');
let pods: string[] = [];
const secretName = unique('pir-acts-secret');
const secretValue = `s3cr3t-${randomBytes(16).toString('hex')}`;

async function object(key: string): Promise<{ body: Buffer; sha256?: string }> {
  const got = await s3.send(new GetObjectCommand({ Bucket, Key: key }));
  return { body: Buffer.from(await got.Body!.transformToByteArray()), sha256: got.Metadata?.sha256 };
}
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  h = activityHarness();
  await scratchApp(kc, deployment, { replicas: 3, script: restartableScript(['started']) });
  pods = (await readyPods(kc, ns, `app=${deployment}`, 3)).map((p) => p.metadata!.name!).sort();
  await core.createNamespacedSecret(ns, { metadata: { name: secretName }, type: 'Opaque', stringData: { API_TOKEN: secretValue } });
});

afterAll(async () => {
  await deleteDeployment(kc, deployment);
  await core.deleteNamespacedSecret(secretName, ns).catch(() => undefined);
  const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: `runbooks/${folder}` }));
  const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
  if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys } }));
  s3.destroy();
  await h?.close();
});

test('linesInWindow keeps the lines stamped inside the window (continuation lines follow theirs)', () => {
  const text = [
    '2026-01-01T09:59:59.999999999Z before',
    '2026-01-01T10:00:00.000000000Z first ERROR x',
    'wrapped part',
    '2026-01-01T10:30:00Z ok',
    '2026-01-01T11:00:00.001Z after',
    'wrapped after',
    '',
  ].join('\n');
  const kept = linesInWindow(text, Date.parse('2026-01-01T10:00:00Z'), Date.parse('2026-01-01T11:00:00Z'));
  expect(kept.text).toBe('2026-01-01T10:00:00.000000000Z first ERROR x\nwrapped part\n2026-01-01T10:30:00Z ok\n');
  expect(kept).toMatchObject({ lines: 3, errorLines: 1 });
  expect(linesInWindow('', 0, 1)).toEqual({ text: '', lines: 0, errorLines: 0 });
});

test('logs of every pod, only the window, one object per container log with its digest; a retry writes the same keys', async () => {
  // Before the window: each pod's start line.
  for (const pod of pods) await waitUntil(`${pod} to log its start`, async () => String((await core.readNamespacedPodLog(pod, ns)).body).includes('started'), 60_000);
  const since = new Date().toISOString();
  // The first pod's instance ends (exit 1) and the kubelet starts the next: its log is the previous one.
  await printInContainer(kc, ns, pods[0]!, ['pod 0 previous instance', 'FATAL out of memory']);
  await restartInContainer(kc, ns, pods[0]!, 'exit');
  // In the window: lines of each pod's own; after it: one more.
  for (const [i, pod] of pods.entries()) await printInContainer(kc, ns, pod, [`pod ${i} serving ${pod}`, `ERROR pod ${i} upstream timeout`]);
  const until = new Date().toISOString();
  for (const [i, pod] of pods.entries()) await printInContainer(kc, ns, pod, [`pod ${i} after the window`]);

  const input = { namespace: ns, deployment, since, until, keyPrefix: `${folder}logs/` };
  const result = await h.run('collectLogsToEvidence', input);
  expect(result).toMatchObject({ found: true, selector: `app=${deployment}`, podsOmitted: 0, failures: [] });
  expect(result.pods.map((p) => p.name)).toEqual(pods);
  expect(result.pods[0]).toMatchObject({ restarts: 1, lastTerminationReason: 'Error' });
  expect(result.objects.map((o) => [o.pod, o.previous, o.key])).toEqual([
    [pods[0], true, `runbooks/${folder}logs/${pods[0]}/app.previous.log`],
    [pods[0], false, `runbooks/${folder}logs/${pods[0]}/app.log`],
    [pods[1], false, `runbooks/${folder}logs/${pods[1]}/app.log`],
    [pods[2], false, `runbooks/${folder}logs/${pods[2]}/app.log`],
  ]);
  for (const o of result.objects) {
    const { body, sha256 } = await object(o.key);
    expect({ size: body.length, sha256: sha(body), meta: sha256 }).toEqual({ size: o.size, sha256: o.sha256, meta: o.sha256 });
    const text = body.toString('utf8');
    const i = pods.indexOf(o.pod);
    if (o.previous) {
      expect(text).toMatch(/^\S+Z pod 0 previous instance\n\S+Z FATAL out of memory\n$/);
      continue;
    }
    // Timestamps kept (kubectl logs --timestamps); the start line and the one after the window dropped.
    expect(text).toMatch(new RegExp(`^\\S+Z pod ${i} serving ${o.pod}\\n\\S+Z ERROR pod ${i} upstream timeout\\n$`));
    expect(o).toMatchObject({ lines: 2, errorLines: 1, truncated: false });
    for (const other of pods.filter((p) => p !== o.pod)) expect(text).not.toContain(`serving ${other}`);
  }
  expect(result.totals).toEqual({ lines: 8, errorLines: 4, bytes: result.objects.reduce((n, o) => n + o.size, 0) });

  // A retry (same window, same keys) finds the same content: same digests.
  const again = await h.run('collectLogsToEvidence', input);
  expect(again.objects.map((o) => [o.key, o.sha256])).toEqual(result.objects.map((o) => [o.key, o.sha256]));
  expect(h.heartbeats.length).toBeGreaterThan(0);
});

test('a capped container log is marked truncated and ends on a whole line', async () => {
  const pod = pods[1]!;
  const lines = Array.from({ length: 400 }, (_, i) => `capped line ${i} ${'x'.repeat(40)}`);
  const since = new Date().toISOString();
  await printInContainer(kc, ns, pod, lines);
  const result = await h.run('collectLogsToEvidence', {
    namespace: ns,
    deployment,
    since,
    until: new Date(Date.now() + minute).toISOString(),
    keyPrefix: `${folder}capped/`,
    maxBytesPerContainer: 4096,
  });
  const capped = result.objects.find((o) => o.pod === pod)!;
  expect(capped.truncated).toBe(true);
  const text = (await object(capped.key)).body.toString('utf8');
  expect(text.length).toBeLessThanOrEqual(4096);
  // The oldest bytes of the window kept, cut at a whole line (the server counts its window in whole seconds, so lines just before it may lead).
  expect(text).toMatch(/^(\S+Z [^\n]*\n)*\S+Z capped line 0 x+\n(\S+Z capped line \d+ x+\n)+$/);
});

test('a Deployment that does not exist: found false, nothing written', async () => {
  const result = await h.run('collectLogsToEvidence', {
    namespace: ns,
    deployment: 'no-such-app',
    since: new Date(Date.now() - minute).toISOString(),
    until: new Date().toISOString(),
    keyPrefix: `${folder}none/`,
  });
  expect(result).toMatchObject({ found: false, pods: [], objects: [] });
});

test('refusals: kube-system, keys outside the folder, bad windows', async () => {
  const since = new Date(Date.now() - minute).toISOString();
  const until = new Date().toISOString();
  expect((await failureOf(h.run('collectLogsToEvidence', { namespace: 'kube-system', deployment: 'coredns', since, until, keyPrefix: `${folder}x/` }))).type).toBe('Refused');
  expect((await failureOf(h.run('collectEventsToEvidence', { namespace: 'kube-system', since, key: `${folder}e.json` }))).type).toBe('Refused');
  expect((await failureOf(h.run('snapshotConfigToEvidence', { namespace: 'kube-system', since, key: `${folder}s.yaml` }))).type).toBe('Refused');
  expect((await failureOf(h.run('collectLogsToEvidence', { namespace: ns, deployment, since, until, keyPrefix: '../database/' }))).type).toBe('InvalidInput');
  expect((await failureOf(h.run('collectLogsToEvidence', { namespace: ns, deployment, since, until, keyPrefix: `${folder}no-slash` }))).type).toBe('InvalidInput');
  expect((await failureOf(h.run('collectEventsToEvidence', { namespace: ns, since: 'an hour ago', key: `${folder}e.json` }))).type).toBe('InvalidInput');
  expect((await failureOf(h.run('collectLogsToEvidence', { namespace: ns, deployment, since: until, until: since, keyPrefix: `${folder}x/` }))).type).toBe('InvalidInput');
});

test('events of the window to S3 as JSON; the result holds counts and reasons only', async () => {
  const since = new Date(Date.now() - 5000).toISOString();
  const name = `${pods[2]}.${randomBytes(4).toString('hex')}`;
  const at = new Date();
  await core.createNamespacedEvent(ns, {
    metadata: { name, namespace: ns },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pods[2], namespace: ns },
    type: 'Warning',
    reason: 'Unhealthy',
    message: `Readiness probe failed: incident marker ${name}`,
    source: { component: 'kubelet' },
    firstTimestamp: at,
    lastTimestamp: at,
    count: 7,
  });
  try {
    const result = await h.run('collectEventsToEvidence', { namespace: ns, since, key: `${folder}events.json` });
    expect(result.key).toBe(`runbooks/${folder}events.json`);
    const { body, sha256 } = await object(result.key);
    expect({ size: body.length, sha256: sha(body), meta: sha256 }).toEqual({ size: result.size, sha256: result.sha256, meta: result.sha256 });
    const doc = JSON.parse(body.toString('utf8')) as { total: number; events: Array<{ metadata: { name: string; managedFields?: unknown }; message: string; lastSeen: string }> };
    expect(doc.total).toBe(result.total);
    const mine = doc.events.find((e) => e.metadata.name === name)!;
    expect(mine.message).toContain('incident marker');
    expect(mine.metadata.managedFields).toBeUndefined();
    expect(doc.events.every((e) => e.lastSeen >= since)).toBe(true);
    expect(result.reasons).toContainEqual({ type: 'Warning', reason: 'Unhealthy', occurrences: 7, objects: 1 });
    expect(result.warnings).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(result)).not.toContain('incident marker');
  } finally {
    await core.deleteNamespacedEvent(name, ns);
  }
});

test('configuration snapshot: workloads and config in full, Secrets by name and key only, never a value', async () => {
  const since = new Date(Date.now() - 30 * minute).toISOString();
  const result = await h.run('snapshotConfigToEvidence', { namespace: ns, since, key: `${folder}config-snapshot.yaml` });
  const { body, sha256 } = await object(result.key);
  expect({ size: body.length, sha256: sha(body), meta: sha256 }).toEqual({ size: result.size, sha256: result.sha256, meta: result.sha256 });
  expect((await s3.send(new HeadObjectCommand({ Bucket, Key: result.key }))).ContentType).toBe('application/yaml');
  const text = body.toString('utf8');
  for (const value of ['seeded-db-password', 'seeded-redis-password', secretValue]) {
    expect(text).not.toContain(value);
    expect(text).not.toContain(Buffer.from(value).toString('base64'));
  }
  const doc = parseYaml(text) as {
    secrets: Array<{ name: string; type: string; keys: string[] }>;
    items: Array<{ kind: string; metadata: { name: string; managedFields?: unknown }; data?: Record<string, string> }>;
  };
  expect(doc.secrets).toContainEqual({ name: secretName, type: 'Opaque', keys: ['API_TOKEN'] });
  expect(doc.secrets.find((s) => s.name === 'app-secrets')?.keys).toEqual(expect.arrayContaining(['DATABASE_PASSWORD', 'REDIS_PASSWORD']));
  expect(doc.items.some((i) => i.kind === 'Secret')).toBe(false);
  const kinds = new Set(doc.items.map((i) => `${i.kind}/${i.metadata.name}`));
  for (const expected of [
    'Deployment/short-drama-app',
    `Deployment/${deployment}`,
    'Service/short-drama-app',
    'HorizontalPodAutoscaler/short-drama-app',
    'PersistentVolumeClaim/postgres-pvc',
    'Ingress/app-ingress',
    'ConfigMap/app-config',
    `Pod/${pods[0]}`,
  ]) {
    expect(kinds).toContain(expected);
  }
  expect(doc.items.find((i) => i.kind === 'ConfigMap' && i.metadata.name === 'app-config')?.data?.DATABASE_HOST).toBe('postgres');
  expect(doc.items.every((i) => i.metadata.managedFields === undefined)).toBe(true);
  expect(result.counts).toMatchObject({ Deployment: expect.any(Number), Pod: expect.any(Number), ConfigMap: expect.any(Number), Secret: doc.secrets.length });
  expect(result.unavailable).toEqual([]);
  // The scratch Deployment was created minutes ago: a change in the window, named in the result.
  expect(result.changedInWindow).toContainEqual(expect.objectContaining({ kind: 'Deployment', name: deployment }));
  expect(JSON.stringify(result)).not.toContain(secretValue);
});

test('kinds the worker may not list (RBAC) are named as unavailable; the rest of the snapshot is taken', async () => {
  // The test bed's read-only ServiceAccount may read core, apps, autoscaling and networking, not batch.
  const ro = activityHarness({ KUBECONFIG: env.TESTBED_KUBECONFIG_READONLY });
  try {
    const result = await ro.run('snapshotConfigToEvidence', { namespace: ns, since: new Date().toISOString(), key: `${folder}readonly-snapshot.yaml` });
    expect(result.unavailable.map((u) => u.kind)).toEqual(['Job', 'CronJob']);
    expect(result.unavailable[0]!.error).toMatch(/list jobs\.batch in namespace short-drama-prod/);
    expect(result.counts.Deployment).toBeGreaterThanOrEqual(3);
    expect(result.counts).not.toHaveProperty('Job');
    expect(result.secrets).toBeGreaterThanOrEqual(1);
  } finally {
    await ro.close();
  }
});
