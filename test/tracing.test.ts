import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { waitUntil } from '../scripts/testbed/processes';
import { alertNotification, postToBridge } from './helpers/alert-notifications';
import { startScript, type RunningProcess } from './helpers/process-output';
import { terminateRuns } from './helpers/runbook-runs';
import { testbedConfig, testbedEnv } from './helpers/testbed';

/** One span as the collector's file exporter writes it (OTLP JSON), with its service. */
interface ExportedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Record<string, unknown>;
}

interface OtlpAttribute {
  key: string;
  value: Record<string, unknown>;
}

interface OtlpExport {
  resourceSpans?: Array<{
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttribute[] }> }>;
  }>;
}

/** OTLP JSON attributes as a record: int64 values come as text, and are numbers here. */
const attributesOf = (list: OtlpAttribute[] = []) => Object.fromEntries(list.map((a) => [a.key, 'intValue' in a.value ? Number(a.value.intValue) : Object.values(a.value)[0]]));

/** Every span the test bed's collector has written so far. */
function exportedSpans(file: string): ExportedSpan[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .flatMap((line) =>
      ((JSON.parse(line) as OtlpExport).resourceSpans ?? []).flatMap((resourceSpans) => {
        const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name']);
        return (resourceSpans.scopeSpans ?? []).flatMap((scope) =>
          (scope.spans ?? []).map((span) => ({ ...span, service, parentSpanId: span.parentSpanId || undefined, attributes: attributesOf(span.attributes) })),
        );
      }),
    );
}

/**
 * Tracing end to end: the alert bridge and the worker as their own processes with
 * OTEL_EXPORTER_OTLP_ENDPOINT at the test bed's OpenTelemetry Collector (scripts/testbed/otel-collector.ts),
 * a real Alertmanager notification, a podCrashLoop run in plan mode, and the spans as the collector
 * received them.
 */
describe('tracing', () => {
  const env = testbedEnv();
  const config = testbedConfig();
  // The default route: ApiErrorRateHigh starts podCrashLoop (plan) on short-drama-app.
  const workflowId = 'podCrashLoop/short-drama-prod/short-drama-app';
  const processes: RunningProcess[] = [];

  // The workflows bundled ahead of time as the image does (workers/bundle-workflows.ts): the worker runs the traced bundle beside it.
  const bundleDir = mkdtempSync(join(tmpdir(), 'tracing-bundle-'));

  afterAll(async () => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await terminateRuns(config.temporal, [workflowId]);
    rmSync(bundleDir, { recursive: true, force: true });
  });

  test('one trace from the bridge request through the workflow to each activity, with names that say what they are, and no secret', async () => {
    // A run left in flight would be joined, not started: this one must be the run the notification starts.
    await terminateRuns(config.temporal, [workflowId]);
    const taskQueue = `tracing-${randomUUID()}`;
    const traced = { ...process.env, ...env, OTEL_EXPORTER_OTLP_ENDPOINT: env.TESTBED_OTLP_ENDPOINT, TEMPORAL_TASK_QUEUE: taskQueue };
    const bundling = startScript('workers/bundle-workflows.ts', process.env, [join(bundleDir, 'workflow-bundle.js')]);
    processes.push(bundling);
    expect(await bundling.exited).toBe(0);
    const worker = startScript('workers/main.ts', { ...traced, WORKER_METRICS_PORT: '0', WORKFLOW_BUNDLE: join(bundleDir, 'workflow-bundle.js') });
    const bridge = startScript('scripts/alert-bridge.ts', { ...traced, ALERT_BRIDGE_LISTEN: '127.0.0.1:0' });
    processes.push(worker, bridge);
    const listening = JSON.parse(await bridge.waitForLine((line) => line.includes('"alert bridge listening"'))) as { url: string };
    await worker.waitForLine((line) => line.includes('"worker ready"'));

    const answer = await postToBridge(
      listening.url.replace(/\/alertmanager$/, ''),
      alertNotification([{ status: 'firing', labels: { alertname: 'ApiErrorRateHigh', namespace: 'short-drama-prod', trace: taskQueue } }]),
      env.ALERT_BRIDGE_TOKEN,
    );
    expect(answer.status).toBe(200);
    expect(answer.body.started).toEqual([expect.objectContaining({ runbook: 'podCrashLoop', workflowId })]);
    const { runId } = answer.body.started[0]!;

    // The run's steps, as its history records them: every activity it completed.
    const connection = await Connection.connect({ address: config.temporal.address });
    let completedActivities: Array<{ activityId: string; activityType: string }>;
    try {
      const handle = new Client({ connection }).workflow.getHandle(workflowId, runId);
      await handle.result();
      const history = await handle.fetchHistory();
      const scheduled = new Map<string, { activityId: string; activityType: string }>();
      for (const event of history.events ?? []) {
        const attributes = event.activityTaskScheduledEventAttributes;
        if (attributes) scheduled.set(String(event.eventId), { activityId: attributes.activityId!, activityType: attributes.activityType!.name! });
      }
      completedActivities = (history.events ?? []).flatMap((event) => {
        const completed = event.activityTaskCompletedEventAttributes;
        return completed ? [scheduled.get(String(completed.scheduledEventId))!] : [];
      });
    } finally {
      await connection.close();
    }
    expect(completedActivities.length).toBeGreaterThanOrEqual(3);

    // Both stop gracefully, which exports what they still buffer.
    for (const p of [bridge, worker]) p.child.kill('SIGTERM');
    expect(await bridge.exited).toBe(0);
    expect(await worker.exited).toBe(0);

    const file = env.TESTBED_OTEL_TRACES_FILE!;
    // The bridge's start of this run (by its run id: the file keeps earlier runs' spans too), and everything of its trace.
    const startOfRun = () => exportedSpans(file).find((s) => s.name === 'SignalWithStartWorkflow:podCrashLoop' && s.attributes.run_id === runId);
    // Waits for the spans by the run's id, whatever their trace, so a broken link fails below and says where.
    await waitUntil('the run’s start and activity spans at the collector', () => {
      const spans = exportedSpans(file);
      return startOfRun() !== undefined && spans.filter((s) => s.name.startsWith('RunActivity:') && s.attributes.run_id === runId).length >= completedActivities.length;
    });
    const trace = exportedSpans(file).filter((s) => s.traceId === startOfRun()!.traceId);

    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const parentOf = (span: ExportedSpan) => (span.parentSpanId ? byId.get(span.parentSpanId) : undefined);
    // bridge request (the root) -> the client's start (its headers carry the context) -> the workflow run.
    const start = trace.find((s) => s.name === 'SignalWithStartWorkflow:podCrashLoop' && s.attributes.run_id === runId)!;
    expect(start).toMatchObject({ service: 'runbook-alert-bridge', attributes: expect.objectContaining({ temporalWorkflowId: workflowId }) });
    const root = parentOf(start);
    expect(root).toMatchObject({ service: 'runbook-alert-bridge', name: 'POST /alertmanager', parentSpanId: undefined });
    expect(root!.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/alertmanager', 'http.response.status_code': 200, 'runbook.alerts.started': 1 });
    const runs = trace.filter((s) => s.name === 'RunWorkflow:podCrashLoop');
    expect(runs.length).toBeGreaterThanOrEqual(1);
    const run = runs[0]!;
    // The run's identity only, not the WorkflowInfo the SDK's sink adds (memo, search attributes, last result: decoded payloads).
    expect(run.service).toBe('runbook-worker');
    expect(run.attributes).toEqual({ workflowId, runId, workflowType: 'podCrashLoop', taskQueue, namespace: 'default', attempt: 1 });
    expect(parentOf(run)).toBe(start);

    // Each completed activity: the workflow's StartActivity span under the run, its RunActivity span under that.
    for (const { activityId, activityType } of completedActivities) {
      const execution = trace.find((s) => s.name === `RunActivity:${activityType}` && s.attributes.temporalActivityId === activityId);
      expect(execution).toMatchObject({ service: 'runbook-worker', attributes: { temporalActivityId: activityId, temporalWorkflowId: workflowId, run_id: runId } });
      const scheduling = parentOf(execution!);
      expect(scheduling?.name).toBe(`StartActivity:${activityType}`);
      let ancestor = parentOf(scheduling!);
      while (ancestor && ancestor !== run) ancestor = parentOf(ancestor);
      expect(ancestor).toBe(run);
    }

    // No credential of the test bed anywhere the collector wrote: names, attributes, events, resources.
    const written = readFileSync(file, 'utf8');
    for (const secret of [
      env.ALERT_BRIDGE_TOKEN!,
      env.TESTBED_POSTGRES_PASSWORD!,
      env.TESTBED_WORKER_DATABASE_PASSWORD!,
      env.TESTBED_REDIS_PASSWORD!,
      env.TESTBED_REDIS_WORKER_PASSWORD!,
      env.S3_SECRET_ACCESS_KEY!,
      env.TESTBED_PAYLOAD_KEY!,
    ]) {
      expect(written).not.toContain(secret);
    }
  });
});
