import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { CoreV1Api } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { createRunbookClient } from '../../client';
import { catalog, workflowIdFor } from '../../common/catalog';
import { postIncidentReviewInput } from '../../common/inputs/post-incident-review';
import type { PostIncidentReviewResult } from '../../workflows/post-incident-review';
import { connectClient } from '../../config/temporal-connection';
import { recordHistory } from '../helpers/histories';
import { deleteDeployment, restartableScript, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig, kubernetesNamespace as ns, waitForRollout } from '../helpers/kube-cluster';
import { patchDeployment } from '../helpers/kube-objects';
import { printInContainer, readyPods, restartInContainer } from '../helpers/kube-pods';
import { historyText, readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { startScript } from '../helpers/process-output';
import { testbedConfig, testbedEnv, testbedS3 } from '../helpers/testbed';
import { withRunbooks, withWorker } from '../helpers/worker';

const env = testbedEnv();
const Bucket = env.S3_BUCKET!;

async function historyOf(handle: WorkflowHandle): Promise<{ bytes: number; text: string }> {
  const history = await handle.fetchHistory();
  return { bytes: temporal.api.history.v1.History.encode(history).finish().length, text: historyText(history).join('\n') };
}

/**
 * 事后分析 against the real test bed: a scratch Deployment of three real pods on the node with big
 * logs of their own (one OOM-killed by the kernel once), a scratch Secret whose value must never
 * leave the cluster, SeaweedFS for the evidence and the report, and the Temporal dev server.
 * Scratch objects and the evidence written are removed at the end (the reports stay, as for every runbook).
 */
describe('postIncidentReview', () => {
  const config = testbedConfig();
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const s3 = testbedS3();
  const deployment = unique('pir-app');
  const secretName = unique('pir-secret');
  const secretValue = `pir-${randomBytes(20).toString('hex')}`;
  const forbidden = ['seeded-db-password', 'seeded-redis-password', secretValue].flatMap((v) => [v, Buffer.from(v).toString('base64')]);
  let pods: string[] = [];
  const workflowIds: string[] = [];
  const evidenceKeys: string[] = [];

  const get = async (key: string) => {
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: key }));
    return { body: Buffer.from(await got.Body!.transformToByteArray()), sha256: got.Metadata?.sha256 };
  };
  const track = (result: PostIncidentReviewResult) => evidenceKeys.push(...result.evidence.map((e) => e.key));

  beforeAll(async () => {
    await scratchApp(kc, deployment, { replicas: 3, script: restartableScript() });
    pods = (await readyPods(kc, ns, `app=${deployment}`, 3)).map((p) => p.metadata!.name!).sort();
    await core.createNamespacedSecret(ns, { metadata: { name: secretName }, type: 'Opaque', stringData: { API_TOKEN: secretValue } });
  });

  afterEach(async () => {
    await terminateRuns(config.temporal, workflowIds);
  });

  afterAll(async () => {
    await deleteDeployment(kc, deployment);
    await core.deleteNamespacedSecret(secretName, ns).catch(() => undefined);
    for (let at = 0; at < evidenceKeys.length; at += 1000) {
      await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: evidenceKeys.slice(at, at + 1000).map((Key) => ({ Key })) } }));
    }
    s3.destroy();
  });

  test('2 MiB of logs from every pod, events and the snapshot in S3 with the digests the history names; the history stays small and holds no log line or secret', async () => {
    // Each pod its own lines (~0.9 MiB each), with a marker that must reach S3 but never the history.
    const markers = pods.map((pod) => `marker-${pod}-${randomBytes(6).toString('hex')}`);
    // The first pod's first instance is OOM-killed by the kernel: its last lines are the previous log.
    await printInContainer(kc, ns, pods[0]!, ['previous instance of pod 0', `FATAL out of memory ${markers[0]}`]);
    await restartInContainer(kc, ns, pods[0]!, 'oom');
    for (const [i, pod] of pods.entries()) {
      await printInContainer(
        kc,
        ns,
        pod,
        Array.from({ length: 7200 }, (_, n) => `${n % 1000 === 999 ? 'ERROR' : 'INFO'} ${markers[i]} GET /api/dramas/${n} 200 ${'.'.repeat(60)}`),
      );
    }
    const incidentId = `INC-${randomUUID().slice(0, 8)}`;
    const impact = 'Video playback failed for about 20% of users between 10:05 and 10:40.';

    const { result, history } = await withRunbooks(config, async ({ runbooks, client }) => {
      const { workflowId } = await runbooks.startRunbook('postIncidentReview', { appDeployment: deployment, incidentId, title: 'Playback outage', impact, severity: 'P1' }, { startedBy: 'erin' });
      workflowIds.push(workflowId);
      expect(workflowId).toBe(`postIncidentReview/${ns}/incident-${incidentId}`);
      const finished = await runbooks.waitForResult<PostIncidentReviewResult>(workflowId);
      const handle = client.workflow.getHandle(workflowId);
      // postIncidentReview--evidence.json is a run from before the API audit evidence (its patch): kept as it is, so that path replays too.
      await recordHistory(handle, 'evidence-and-audit');
      return { result: finished, history: await historyOf(handle) };
    });
    track(result);

    expect(result.incidentId).toBe(incidentId);
    expect(result.outcome).toBe('planned'); // plan mode by default; the run changes nothing either way
    expect(result.plan).toEqual([]);
    expect(result.logs).toMatchObject({ found: true, pods: 3, objects: 4, failures: 0, truncated: 0, lines: 3 * 7200 + 2, errorLines: 3 * 7 + 1 });
    expect(result.logs.bytes).toBeGreaterThan(2 * 1_048_576);
    expect(result.generated).toEqual(['rootCause', 'solution', 'prevention']);

    // Every evidence object is in S3 with the size and digest the result (and history) name.
    const logItems = result.evidence.filter((e) => e.key.includes('/app-logs/'));
    expect(logItems.map((e) => e.key.replace(/^.*\/app-logs\//, ''))).toEqual([`${pods[0]}/app.previous.log`, `${pods[0]}/app.log`, `${pods[1]}/app.log`, `${pods[2]}/app.log`]);
    expect(result.evidence.map((e) => e.key.replace(/^.*\//, ''))).toEqual(['app.previous.log', 'app.log', 'app.log', 'app.log', 'events.json', 'config-snapshot.yaml', 'audit-events.jsonl']);
    const texts = new Map<string, string>();
    for (const item of result.evidence) {
      expect(item.key).toMatch(new RegExp(`^runbooks/evidence/postIncidentReview/\\d{4}-\\d{2}-\\d{2}/postIncidentReview_${ns}_incident-${incidentId}-[0-9a-f-]{36}/`));
      const { body, sha256 } = await get(item.key);
      expect({ key: item.key, size: body.length, sha256: createHash('sha256').update(body).digest('hex'), metadata: sha256 }).toEqual({
        key: item.key,
        size: item.size,
        sha256: item.sha256,
        metadata: item.sha256,
      });
      expect(history.text).toContain(item.sha256);
      texts.set(item.key, body.toString('utf8'));
    }
    // The log lines of every pod are in that pod's log object, and only there.
    for (const [i, pod] of pods.entries()) {
      const text = texts.get(logItems.find((e) => e.key.endsWith(`/${pod}/app.log`))!.key)!;
      expect(text.split('\n').filter((l) => l.includes(markers[i]!))).toHaveLength(7200);
      expect(text).toMatch(new RegExp(`^\\S+Z INFO ${markers[i]} GET /api/dramas/0 200`));
      for (const other of markers.filter((_, j) => j !== i)) expect(text).not.toContain(other);
      expect(history.text).not.toContain(markers[i]);
    }
    expect(texts.get(logItems[0]!.key)).toContain(`FATAL out of memory ${markers[0]}`);

    // Snapshot: Secret names and keys, workloads and config; no secret value anywhere.
    const snapshot = parseYaml([...texts.entries()].find(([k]) => k.endsWith('config-snapshot.yaml'))![1]) as {
      secrets: Array<{ name: string; keys: string[] }>;
      changedSince: { objects: unknown[] };
      items: Array<{ kind: string; metadata: { name: string } }>;
    };
    expect(snapshot.secrets).toContainEqual(expect.objectContaining({ name: secretName, keys: ['API_TOKEN'] }));
    expect(snapshot.secrets.find((s) => s.name === 'app-secrets')?.keys).toEqual(expect.arrayContaining(['DATABASE_PASSWORD', 'REDIS_PASSWORD']));
    expect(snapshot.changedSince.objects).toContainEqual(expect.objectContaining({ kind: 'Deployment', name: deployment }));
    expect(snapshot.changedSince.objects).toContainEqual(expect.objectContaining({ kind: 'ReplicaSet', operation: 'Create', name: expect.stringMatching(new RegExp(`^${deployment}-`)) }));
    expect(snapshot.items.map((i) => `${i.kind}/${i.metadata.name}`)).toEqual(
      expect.arrayContaining([`Deployment/${deployment}`, 'Deployment/short-drama-app', 'ConfigMap/app-config', 'PersistentVolumeClaim/postgres-pvc', 'Ingress/app-ingress', `Pod/${pods[1]}`]),
    );

    // The report: the five parts, the timeline with the steps and the evidence, people's text where given.
    const markdown = await readBucketText(result.report!.markdownKey);
    const json = await readBucketText(result.report!.jsonKey);
    for (const part of ['## Timeline', '## Impact', '## Root cause', '## Solution', '## Prevention', '## Evidence']) expect(markdown).toContain(part);
    expect(markdown).toContain(impact);
    expect(markdown).toContain('Playback outage: incident');
    // Who changed what (the API audit log: this test's own setup as the admin, at least) comes first.
    expect(markdown).toMatch(new RegExp(`Signals in the window: changes by people in the window \\(API audit log\\): .+?\\. OOMKilled containers in ${pods[0]}\\. changed in the window: `));
    for (const step of ['Logs of every pod', 'Events of namespace', 'Configuration snapshot'])
      expect(markdown).toMatch(new RegExp(`\\| read \\| ${step}[^|]*\\|[^|]*\\| [^|]*-> runbooks/evidence/postIncidentReview/`));
    for (const item of result.evidence) expect(markdown).toContain(`\`${item.key}\` (${item.size} bytes, sha256 ${item.sha256.slice(0, 16)})`);
    const report = JSON.parse(json) as { evidence: unknown; impact: string; timeline: Array<{ stepId?: string; event: string }> };
    expect(report.evidence).toEqual(result.evidence);
    expect(report.impact).toBe(impact);
    expect(report.timeline.filter((e) => e.event === 'read').map((e) => e.stepId)).toEqual(['app-logs', 'events', 'config-snapshot', 'audit-events']);

    // No secret value in any evidence object, the report or the history; the history stays small.
    for (const text of [...texts.values(), markdown, json, history.text]) for (const value of forbidden) expect(text.includes(value) ? value : undefined).toBeUndefined();
    expect(history.text).toContain('Playback outage'); // the search reads the payloads (they are not base64 here)
    expect(history.bytes).toBeLessThan(64 * 1024);
  });

  test('no credential of a workload reaches S3, the history or the worker log: literal env values, credential ConfigMap values and last-applied-configuration are dropped', async () => {
    const sentinel = `SENTINEL${randomBytes(12).toString('hex')}`;
    const name = unique('pir-cred');
    const configMap = unique('pir-cred-config');
    const credentials = [
      { name: 'DATABASE_URL', value: `postgres://u:${sentinel}@postgres:5432/short_drama_prod` },
      { name: 'API_TOKEN', valueFrom: { configMapKeyRef: { name: configMap, key: 'api_token' } } },
    ];
    const startedAt = new Date(Date.now() - 1000);
    await core.createNamespacedConfigMap(ns, {
      metadata: { name: configMap, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({ data: { api_token: sentinel } }) } },
      data: { api_token: sentinel, upstream: `https://bot:${sentinel}@api.example/v1`, LOG_LEVEL: 'info' },
    });
    await scratchApp(kc, name, { script: restartableScript() });
    // What `kubectl apply` leaves behind: the whole object again, literal values included.
    const lastApplied = JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns },
      spec: { template: { spec: { containers: [{ name: 'app', env: credentials }] } } },
    });
    await patchDeployment(kc, ns, name, {
      metadata: { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied } },
      spec: { template: { spec: { containers: [{ name: 'app', env: credentials }] } } },
    });
    await waitForRollout(kc, ns, name);
    const taskQueue = `pir-scrub-${randomUUID()}`;
    const worker = startScript('workers/main.ts', {
      ...process.env,
      ...env,
      TEMPORAL_TASK_QUEUE: taskQueue,
      WORKER_METRICS_HOST: '127.0.0.1',
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'DEBUG',
    });
    try {
      await readyPods(kc, ns, `app=${name}`, 1);
      await worker.waitForLine((line) => line.includes('"worker ready"'));
      const { client, close } = await connectClient(config.temporal);
      let result: PostIncidentReviewResult;
      let historyJson: string;
      let workflowId = '';
      try {
        const runbooks = createRunbookClient({ client, taskQueue });
        ({ workflowId } = await runbooks.startRunbook('postIncidentReview', { appDeployment: name, incidentId: `INC-${randomUUID().slice(0, 8)}`, sinceMinutes: 5 }, { startedBy: 'erin' }));
        workflowIds.push(workflowId);
        result = await runbooks.waitForResult<PostIncidentReviewResult>(workflowId);
        historyJson = JSON.stringify(await client.workflow.getHandle(workflowId).fetchHistory());
      } finally {
        await close();
      }
      track(result);
      // The run's last line: everything it logged is in by then.
      await worker.waitForLine((line) => line.includes('"Workflow completed"') && line.includes(`"workflowId":"${workflowId}"`));
      expect(result.evidence.map((e) => e.key.replace(/^.*\//, ''))).toEqual(expect.arrayContaining(['events.json', 'config-snapshot.yaml']));

      // Every object the run wrote: listed (written since it started), read and searched.
      const written: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'runbooks/', ContinuationToken: token }));
        written.push(...(page.Contents ?? []).filter((o) => o.LastModified! >= startedAt).map((o) => o.Key!));
        token = page.NextContinuationToken;
      } while (token);
      expect(written).toEqual(expect.arrayContaining([...result.evidence.map((e) => e.key), result.report!.markdownKey, result.report!.jsonKey]));
      const found = [];
      for (const key of written) if ((await get(key)).body.toString('utf8').includes(sentinel)) found.push(key);
      expect(found).toEqual([]);
      // The history (payloads are JSON bytes: base64 in the history's JSON, so decoded too) and the log.
      expect(historyJson.includes(sentinel) || historyJson.includes(Buffer.from(sentinel).toString('base64'))).toBe(false);
      expect(historyText(JSON.parse(historyJson)).join('\n')).not.toContain(sentinel);
      expect(worker.lines.length).toBeGreaterThan(0);
      expect(worker.lines.filter((line) => line.includes(sentinel))).toEqual([]);

      // What stays: names and references, ConfigMap values that are not credentials.
      const snapshot = parseYaml((await get(result.evidence.find((e) => e.key.endsWith('config-snapshot.yaml'))!.key)).body.toString('utf8')) as {
        items: Array<{
          kind: string;
          metadata: { name: string; annotations?: Record<string, string> };
          data?: Record<string, string>;
          spec?: { template?: { spec?: { containers?: Array<{ env?: unknown }> } } };
        }>;
      };
      const deploymentItem = snapshot.items.find((i) => i.kind === 'Deployment' && i.metadata.name === name)!;
      expect(deploymentItem.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']).toBeUndefined();
      expect(deploymentItem.spec?.template?.spec?.containers?.[0]?.env).toEqual(
        expect.arrayContaining([
          { name: 'DATABASE_URL', value: '[redacted]' },
          { name: 'API_TOKEN', valueFrom: { configMapKeyRef: { name: configMap, key: 'api_token' } } },
        ]),
      );
      expect(snapshot.items.find((i) => i.kind === 'ConfigMap' && i.metadata.name === configMap)?.data).toEqual({ api_token: '[redacted]', upstream: '[redacted]', LOG_LEVEL: 'info' });
    } finally {
      if (worker.child.exitCode === null) worker.child.kill('SIGTERM');
      await worker.exited;
      await deleteDeployment(kc, name);
      await core.deleteNamespacedConfigMap(configMap, ns).catch(() => undefined);
    }
  });

  test('one run per incident: the same incidentId joins the run in flight, another incident gets its own run; defaults read short-drama-app', async () => {
    const parse = (input: Record<string, unknown>) => postIncidentReviewInput.parse(input) as Record<string, unknown>;
    const entry = catalog.postIncidentReview!;
    expect(entry.kind).toBe('emergency');
    expect(workflowIdFor(entry, parse({ incidentId: 'INC-1' }))).toBe('postIncidentReview/short-drama-prod/incident-INC-1');
    expect(workflowIdFor(entry, parse({}))).toMatch(/^postIncidentReview\/short-drama-prod\/incident-\d{8}-\d{6}$/);

    const [a, b] = [`INC-${randomUUID().slice(0, 8)}`, `INC-${randomUUID().slice(0, 8)}`];
    // Started before any worker polls the task queue, so the first run is surely still in flight.
    const { client, close } = await connectClient(config.temporal);
    let started: Array<{ workflowId: string; runId: string }>;
    try {
      const runbooks = createRunbookClient({ client, taskQueue: config.temporal.taskQueue });
      started = [
        await runbooks.startRunbook('postIncidentReview', { incidentId: a, sinceMinutes: 5 }, { startedBy: 'alerting' }),
        await runbooks.startRunbook('postIncidentReview', { incidentId: a, sinceMinutes: 5 }, { startedBy: 'erin' }),
        await runbooks.startRunbook('postIncidentReview', { incidentId: b, sinceMinutes: 5 }, { startedBy: 'erin' }),
      ];
      workflowIds.push(...started.map((s) => s.workflowId));
    } finally {
      await close();
    }
    expect(started[1]).toEqual(started[0]);
    expect(started[2]!.workflowId).not.toBe(started[0]!.workflowId);
    const results = await withWorker(config, async ({ client: c, taskQueue }) => {
      const runbooks = createRunbookClient({ client: c, taskQueue });
      return Promise.all([started[0]!, started[2]!].map((s) => runbooks.waitForResult<PostIncidentReviewResult>(s.workflowId)));
    });
    results.forEach(track);
    expect(results.map((r) => r.incidentId)).toEqual([a, b]);
    expect(results[0]!.report!.markdownKey).not.toBe(results[1]!.report!.markdownKey);
    for (const r of results) {
      expect(r.logs.found).toBe(true);
      expect(r.logs.pods).toBeGreaterThanOrEqual(2); // the seeded app: HPA minimum 2
      expect(r.logs.objects + r.logs.failures).toBeGreaterThanOrEqual(r.logs.pods);
      expect(r.generated).toEqual(['impact', 'rootCause', 'solution', 'prevention']);
      expect(Date.parse(r.window.until) - Date.parse(r.window.since)).toBe(5 * 60_000);
    }
  });

  test('bad input fails at once, non-retryable, before any activity; kube-system is refused', async () => {
    await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      await expect(runbooks.startRunbook('postIncidentReview', { sinceMinutes: 0 }, { startedBy: 'erin' })).rejects.toThrow('invalid input for postIncidentReview: sinceMinutes: at least 1 minute');

      const bad = await client.workflow.start('postIncidentReview', { taskQueue, workflowId: `pir-bad-${randomUUID()}`, args: [{ sinceMinutes: 0, incidentId: 'no spaces allowed', impact: '' }] });
      const error = await bad.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      const cause = (error as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect(cause.type).toBe('InvalidInput');
      expect(cause.nonRetryable).toBe(true);
      expect(cause.message).toMatch(/^invalid input for postIncidentReview: sinceMinutes: at least 1 minute; incidentId: expected an incident id .*; impact: leave it out/);
      expect(await scheduledActivityTypes(bad)).toEqual([]);

      const system = await client.workflow.start('postIncidentReview', { taskQueue, workflowId: `pir-kube-system-${randomUUID()}`, args: [{ namespace: 'kube-system', appDeployment: 'coredns' }] });
      const refused = await system.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(WorkflowFailedError);
      expect(String(((refused as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toBe('namespace kube-system is never touched by runbooks');
      expect(await scheduledActivityTypes(system)).toEqual(['loadApprovalPolicy', 'assertTargetsAllowed']);
    });
  });
});
