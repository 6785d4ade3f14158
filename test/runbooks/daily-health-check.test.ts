import { randomUUID } from 'node:crypto';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { AutoscalingV2Api, CoreV1Api } from '@kubernetes/client-node';
import { createRunbookClient } from '../../client';
import type { CheckRow, ChecklistResult } from '../../common/checklist';
import type { RunbookConfig } from '../../config/schema';
import { waitUntil } from '../../scripts/testbed/processes';
import { recordHistory } from '../helpers/histories';
import { deleteDeployment, outOfMemory, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { appPods } from '../helpers/app-pods';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { failingPod } from '../helpers/kube-pods';
import { readBucketText, scheduledActivityTypes, terminateRuns } from '../helpers/runbook-runs';
import { closedPort, testbedConfig, testbedEnv, testbedS3 } from '../helpers/testbed';
import { withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';
const workflowId = `dailyHealthCheck/${namespace}`;

/**
 * 每日检查清单 against the real sandbox: a healthy short-drama-prod passes; each problem the
 * manual's daily checks look for is made for real (a crash-looping pod, a Service without
 * endpoints, an HPA at its maximum, a claim that cannot bind, ERROR lines in the app's log,
 * missing, empty and stale backups) and shows as FAIL or WARN in the report in S3.
 * Backups live under a prefix of the test's own below database/, with a real pg_dump as latest.sql.
 */
describe('dailyHealthCheck', () => {
  const env = testbedEnv();
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const s3 = testbedS3();
  const bucket = env.S3_BUCKET!;
  const backupPrefix = `database/test-daily-${randomUUID().slice(0, 8)}/`;
  const app = appPods(kc);
  let dump: Buffer;

  const rowOf = (result: ChecklistResult, id: string): CheckRow => {
    const row = result.checks.find((r) => r.id === id);
    if (!row) throw new Error(`no row ${id}; rows: ${result.checks.map((r) => r.id).join(', ')}`);
    return row;
  };
  const put = (key: string, body: Buffer | string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${backupPrefix}${key}`, Body: body }));

  /** The last run's history, its payloads decoded: what the workflow kept. */
  let lastHistory = { activityTypes: [] as string[], payloadText: '' };

  async function runDaily(config: RunbookConfig, input: Record<string, unknown> = {}, recordAs?: string): Promise<ChecklistResult> {
    await terminateRuns(config.temporal, [workflowId]);
    return withWorker(config, async ({ client }) => {
      const runbooks = createRunbookClient({ client, taskQueue: config.temporal.taskQueue });
      const { workflowId: id } = await runbooks.startRunbook('dailyHealthCheck', { backupPrefix, ...input }, { startedBy: 'test' });
      const result = await runbooks.waitForResult<ChecklistResult>(id);
      const handle = client.workflow.getHandle(id);
      const payloads = [...historyToJSON(await handle.fetchHistory()).matchAll(/"data":\s*"([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'));
      lastHistory = { activityTypes: await scheduledActivityTypes(handle), payloadText: payloads.join('\n') };
      if (recordAs) await recordHistory(handle, recordAs);
      return result;
    });
  }

  beforeAll(async () => {
    dump = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'database/latest.sql' }))).Body!.transformToByteArray());
    await put(`short_drama_prod_${new Date().toISOString().slice(0, 10)}.sql`, dump);
    await put('latest.sql', dump);
  });

  afterAll(async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: backupPrefix }));
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    s3.destroy();
  });

  /**
   * Rows the shared machine decides, not this test: the real node's CPU and memory are the whole
   * host's (the test bed and the tests run there), and the servers' logs keep what earlier tests made
   * them write. Each must agree with its own value; the injected problems below show they detect.
   */
  const machineDecided = ['usage.nodes.cpu', 'usage.nodes.memory', 'logs.app-errors', 'logs.database', 'logs.redis'];
  const agreesWithItsValue = (r: CheckRow) =>
    r.id.startsWith('usage.nodes.') ? (r.status === 'PASS') === parseFloat(r.value) <= parseFloat(r.threshold.replace('<= ', '')) : (r.status === 'PASS') === (r.value === '0');

  test('a healthy sandbox passes every check; the report is in S3 as JSON and Markdown and the summary was sent', async () => {
    const config = testbedConfig();
    const result = await runDaily(config, {}, 'logs-to-evidence');
    const notPassing = result.checks.filter((r) => r.status !== 'PASS');
    expect(notPassing.filter((r) => !machineDecided.includes(r.id))).toEqual([]);
    for (const id of machineDecided) expect([id, agreesWithItsValue(rowOf(result, id))]).toEqual([id, true]);
    expect(result.overall).toBe(notPassing.some((r) => r.status === 'FAIL') ? 'FAIL' : notPassing.length > 0 ? 'WARN' : 'PASS');
    for (const id of [
      'pods.ready',
      'pods.crash-loop',
      'pods.oom-killed',
      'pods.restarts',
      'services.short-drama-app',
      'services.postgres',
      'services.redis',
      'ingress.app-ingress.address',
      'ingress.app-ingress.tls',
      'hpa.short-drama-app',
      'pvc.postgres-pvc',
      'usage.pods.cpu',
      'usage.pods.memory',
      'disk.database',
      'backups.newest',
      'backups.latest',
    ]) {
      expect(rowOf(result, id).status).toBe('PASS');
    }
    expect(rowOf(result, 'backups.latest').value).toMatch(/plain format/);

    const json = JSON.parse(await readBucketText(result.checklistReport!.jsonKey)) as { overall: string; checks: CheckRow[] };
    expect(json.overall).toBe(result.overall);
    expect(json.checks.map((r) => r.id)).toEqual(result.checks.map((r) => r.id));
    const markdown = await readBucketText(result.checklistReport!.markdownKey);
    expect(markdown).toContain(`# dailyHealthCheck: ${result.overall}`);
    expect(markdown).toContain('## 备份验证');

    const messages = (await (await fetch(`${env.TESTBED_WEBHOOK_URL}/messages`)).json()) as Array<{ body: { text: string; metadata?: { event_payload?: { dedupeKey?: string } } } }>;
    const summary = messages.find((m) => m.body.text.includes(`dailyHealthCheck: ${result.overall}`) && m.body.metadata?.event_payload?.dedupeKey?.startsWith(workflowId));
    expect(summary).toBeDefined();
  }, 180_000);

  test('injected problems show as FAIL and WARN, FAILs first in the report and the summary', async () => {
    const crashing = unique('daily-crash');
    const capped = unique('daily-capped');
    const orphanService = unique('daily-noendpoints');
    const pendingClaim = unique('daily-pending');
    const autoscaling = kc.makeApiClient(AutoscalingV2Api);
    try {
      await scratchApp(kc, crashing, { env: outOfMemory });
      await failingPod(kc, namespace, `app=${crashing}`, 'OOMKilled');
      await core.createNamespacedService(namespace, { metadata: { name: orphanService }, spec: { selector: { app: `nothing-${orphanService}` }, ports: [{ port: 80 }] } });
      await core.createNamespacedPersistentVolumeClaim(namespace, {
        metadata: { name: pendingClaim },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'no-such-class', resources: { requests: { storage: '1Gi' } } },
      });
      await scratchApp(kc, capped);
      await autoscaling.createNamespacedHorizontalPodAutoscaler(namespace, {
        metadata: { name: capped },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: capped },
          minReplicas: 1,
          maxReplicas: 1,
          metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
        },
      });
      // The HPA controller fills in the current replicas; until then the HPA is not "at max" yet.
      await waitUntil(`HPA ${capped} observed`, async () => ((await autoscaling.readNamespacedHorizontalPodAutoscaler(capped, namespace)).body.status?.currentReplicas ?? 0) >= 1, 60_000);
      // Two requests per app pod wait past the app's statement timeout behind a lock: two ERROR lines in each pod's log.
      await app.databaseTimeouts(2, env.TESTBED_DATABASE_ADMIN_URL!);
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: `${backupPrefix}latest.sql` }] } }));

      // Any restart warns: a real crash loop restarts a few times in a test's minute, not 7.
      const result = await runDaily(testbedConfig({ CHECKLIST_THRESHOLDS: JSON.stringify({ podRestarts: 0 }) }));
      expect(result.overall).toBe('FAIL');
      expect(rowOf(result, 'pods.ready').status).toBe('FAIL');
      expect(rowOf(result, 'pods.ready').detail).toContain(crashing);
      expect(rowOf(result, 'pods.crash-loop')).toMatchObject({ status: 'FAIL', value: '1' });
      expect(rowOf(result, 'pods.oom-killed').status).toBe('WARN');
      expect(rowOf(result, 'pods.restarts').status).toBe('WARN');
      expect(Number(rowOf(result, 'pods.restarts').value)).toBeGreaterThanOrEqual(1);
      expect(rowOf(result, `services.${orphanService}`)).toMatchObject({ status: 'FAIL', value: '0 ready, 0 not ready' });
      expect(rowOf(result, `hpa.${capped}`).status).toBe('WARN');
      expect(rowOf(result, `pvc.${pendingClaim}`)).toMatchObject({ status: 'FAIL' });
      expect(rowOf(result, `pvc.${pendingClaim}`).value).toMatch(/^Pending/);
      expect(rowOf(result, 'logs.app-errors').status).toBe('FAIL');
      expect(Number(rowOf(result, 'logs.app-errors').value)).toBeGreaterThanOrEqual(2);
      expect(rowOf(result, 'logs.app-errors').detail).toMatch(/^short-drama-app-\S+: .*\bERROR\b/); // the first ERROR line of the tail, maybe older than these
      // The logs went to S3 evidence; the history keeps counts, a matching line and the key, never a line that matched nothing.
      expect(lastHistory.activityTypes.filter((t) => /Logs/.test(t))).toEqual(['scanLogsToEvidence', 'scanLogsToEvidence', 'scanLogsToEvidence']);
      const logKey = /\(log: (runbooks\/evidence\/dailyHealthCheck\/[^)]+\.log)\)$/.exec(rowOf(result, 'logs.app-errors').detail)?.[1];
      // The 504 answers' request lines match no pattern: in the evidence, never in history.
      const evidence = await readBucketText(logKey!);
      expect(evidence).toMatch(/ERROR database timeout after \d+ms on GET \/api\/projects\/1/);
      const requestLine = /GET \/api\/projects\/1 504 \d+ms/.exec(evidence)![0];
      expect(lastHistory.payloadText).not.toContain(requestLine);
      expect(rowOf(result, 'backups.latest')).toMatchObject({ status: 'FAIL', value: 'missing' });
      // What was not broken still passes.
      expect(rowOf(result, 'services.postgres').status).toBe('PASS');
      expect(rowOf(result, 'pvc.postgres-pvc').status).toBe('PASS');

      const markdown = await readBucketText(result.checklistReport!.markdownKey);
      const attention = markdown.slice(markdown.indexOf('## Needs attention'), markdown.indexOf('\n## ', markdown.indexOf('## Needs attention') + 5));
      expect(attention.lastIndexOf('FAIL')).toBeLessThan(attention.indexOf('WARN'));
      const messages = (await (await fetch(`${env.TESTBED_WEBHOOK_URL}/messages`)).json()) as Array<{ body: { text: string; blocks?: Array<{ text?: { text?: string } }> } }>;
      const summary = messages.reverse().find((m) => m.body.text.startsWith('[P2] dailyHealthCheck: FAIL'));
      expect(summary).toBeDefined();
      const lines = (summary!.body.blocks?.[1]?.text?.text ?? '').split('\n').filter((l) => /^(FAIL|WARN) /.test(l));
      expect(lines.length).toBeGreaterThanOrEqual(8);
      expect(lines.findIndex((l) => l.startsWith('WARN'))).toBeGreaterThan(lines.filter((l) => l.startsWith('FAIL')).length - 1);
    } finally {
      await put('latest.sql', dump);
      await autoscaling.deleteNamespacedHorizontalPodAutoscaler(capped, namespace).catch(() => undefined);
      await core.deleteNamespacedService(orphanService, namespace).catch(() => undefined);
      await core.deleteNamespacedPersistentVolumeClaim(pendingClaim, namespace).catch(() => undefined);
      await deleteDeployment(kc, crashing);
      await deleteDeployment(kc, capped);
    }
  }, 240_000);

  test('an empty latest.sql and a newest backup older than the threshold fail the backup checks', async () => {
    try {
      await put('latest.sql', '');
      const writtenAt = Date.now();
      // The newest backup is a second old; a threshold below that makes it stale without waiting a day.
      await waitUntil('the newest backup to be over a second old', async () => Date.now() - writtenAt > 1500);
      const result = await runDaily(testbedConfig({ CHECKLIST_THRESHOLDS: JSON.stringify({ backupMaxAgeHours: 0.0003 }) }));
      expect(rowOf(result, 'backups.latest').status).toBe('FAIL');
      expect(rowOf(result, 'backups.latest').detail).toMatch(/empty/i);
      expect(rowOf(result, 'backups.newest').status).toBe('FAIL');
      expect(rowOf(result, 'backups.newest').threshold).toBe('<= 0.0003 h');
    } finally {
      await put('latest.sql', dump);
    }
  }, 180_000);

  test('a check that cannot run (S3 unreachable) is a WARN with the reason; the rest of the checklist still runs', async () => {
    const result = await runDaily(testbedConfig({ S3_ENDPOINT: `http://127.0.0.1:${closedPort}` }));
    expect(rowOf(result, 'backups')).toMatchObject({ status: 'WARN', value: 'not measured' });
    expect(rowOf(result, 'backups').detail).toMatch(/could not run/);
    expect(rowOf(result, 'pods.ready').status).toBe('PASS');
    // Nowhere to save the report: that is a finding too, and the result still holds every row.
    expect(rowOf(result, 'report')).toMatchObject({ status: 'WARN', value: 'not saved' });
    expect(result.checklistReport).toBeUndefined();
  }, 240_000);

  test("only: the latency alert's subset runs resource usage and the slowest statements, nothing else", async () => {
    const result = await runDaily(testbedConfig(), { only: ['usage', 'slow-statements'] });
    expect(result.checks.map((r) => r.id).sort()).toEqual(['database.slow-statements', 'usage.nodes.cpu', 'usage.nodes.memory', 'usage.pods.cpu', 'usage.pods.memory']);
    expect(rowOf(result, 'database.slow-statements').value).toMatch(/ ms$/);
  }, 180_000);

  test('bad input fails the run at once, non-retryable, before any check', async () => {
    const config = testbedConfig();
    await terminateRuns(config.temporal, [workflowId]);
    await withWorker(config, async ({ client }) => {
      const handle = await client.workflow.start('dailyHealthCheck', {
        taskQueue: config.temporal.taskQueue,
        workflowId: `dailyHealthCheck/bad-${randomUUID()}`,
        args: [{ namespace: 'Not_A_Namespace', appLogLines: 0, only: ['usage', 'everything'] }],
      });
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause as { message: string; nonRetryable?: boolean };
      expect(cause.message).toMatch(/^invalid input for dailyHealthCheck: namespace: expected a Kubernetes name.*appLogLines/);
      expect(cause.message).toContain('only.1: expected some of pods, services, ingress, hpa, pvc, usage, database-volume, logs, backups, slow-statements');
      expect(await scheduledActivityTypes(handle)).toEqual([]);
    });
  }, 60_000);
});
