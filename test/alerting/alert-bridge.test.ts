import { Client, Connection } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { AppsV1Api } from '@kubernetes/client-node';
import { createRunbookClient } from '../../client';
import { startAlertBridge, type AlertBridge, type BridgeLog } from '../../client/alert-bridge';
import { defaultAlertRoutes, type AlertRoute } from '../../config/alerting';
import type { PodCrashLoopResult } from '../../workflows/pod-crash-loop';
import { alertNotification, fingerprintOf, postToBridge } from '../helpers/alert-notifications';
import { deleteDeployment, outOfMemory, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { failingPod } from '../helpers/kube-pods';
import { pendingOf, terminateRuns } from '../helpers/runbook-runs';
import { closedPort, testbedConfig } from '../helpers/testbed';
import { withWorker } from '../helpers/worker';

const namespace = 'short-drama-prod';

/** The default routes, after one that runs podCrashLoop in execute mode for alerts labelled remediation=execute. */
const executeRoute: AlertRoute = { alertname: 'ApiErrorRateHigh', match: { remediation: 'execute' }, runbook: 'podCrashLoop', severity: 'P1', mode: 'execute', input: {} };

/**
 * The Alertmanager bridge over real HTTP, against the test bed's Temporal server and Kubernetes
 * (real pods on the node): each case posts webhook bodies as Alertmanager sends them and looks at the runs.
 */
describe('alert bridge', () => {
  const config = testbedConfig({
    ALERT_ROUTES: JSON.stringify([executeRoute, ...defaultAlertRoutes]),
    RUNBOOK_APPROVERS: JSON.stringify([{ id: 'bob', roles: ['l2'] }]),
  });
  const token = config.alerting.token!;
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const made: string[] = [];
  const logLines: string[] = [];
  const log: BridgeLog = (level, message, fields) => void logLines.push(JSON.stringify({ level, message, ...fields }));
  let connection: Connection;
  let client: Client;
  let bridge: AlertBridge;

  const runId = (deployment: string) => `podCrashLoop/${namespace}/${deployment}`;
  const firing = (labels: Record<string, string>) => ({ status: 'firing' as const, labels: { alertname: 'ApiErrorRateHigh', severity: 'critical', namespace, ...labels } });
  const resolved = (labels: Record<string, string>) => ({ ...firing(labels), status: 'resolved' as const });

  async function exists(workflowId: string): Promise<boolean> {
    try {
      await client.workflow.getHandle(workflowId).describe();
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  async function scratch(prefix: string, env?: Record<string, string>): Promise<string> {
    const name = unique(prefix);
    made.push(name);
    await scratchApp(kc, name, { env });
    return name;
  }

  beforeAll(async () => {
    connection = await Connection.connect({ address: config.temporal.address });
    client = new Client({ connection, namespace: config.temporal.namespace });
    bridge = await startAlertBridge({ client, taskQueue: config.temporal.taskQueue, alerting: config.alerting, listen: '127.0.0.1:0', log });
  });

  /** Cleanups one test asks for, run after it. */
  const afterThis: Array<() => Promise<void>> = [];

  afterEach(async () => {
    for (const cleanup of afterThis.splice(0)) await cleanup();
    await terminateRuns(
      config.temporal,
      made.flatMap((n) => [runId(n), `lock/${namespace}/${n}`]),
    );
  });

  afterAll(async () => {
    await bridge?.close();
    await connection?.close();
    for (const name of made) await deleteDeployment(kc, name);
    // The token is never written to the log, whatever happened.
    expect(logLines.join('\n')).not.toContain(token);
  });

  test('firing ApiErrorRateHigh starts podCrashLoop (plan, P1, started by alertmanager:ApiErrorRateHigh); firing again joins that run', async () => {
    const name = await scratch('ab-plan');
    const alert = firing({ deployment: name });
    // No worker yet: the run stays in flight, so the second notification must find it.
    const first = await postToBridge(bridge.url, alertNotification([alert]), token);
    expect(first.status).toBe(200);
    expect(first.body.started).toEqual([expect.objectContaining({ alertname: 'ApiErrorRateHigh', runbook: 'podCrashLoop', workflowId: runId(name) })]);
    const again = await postToBridge(bridge.url, alertNotification([alert]), token);
    expect(again.status).toBe(200);
    expect(again.body.started[0]!.runId).toBe(first.body.started[0]!.runId);
    const runs = [];
    for await (const run of client.workflow.list({ query: `WorkflowId = '${runId(name)}'` })) runs.push(run.runId);
    expect(runs).toEqual([first.body.started[0]!.runId]);

    const { result, status } = await withWorker(config, async ({ client: workerClient, taskQueue }) => {
      const runbooks = createRunbookClient({ client: workerClient, taskQueue });
      const finished = await runbooks.waitForResult<PodCrashLoopResult>(runId(name));
      return { result: finished, status: await runbooks.getStatus(runId(name)) };
    });
    expect(result.outcome).toBe('planned');
    expect(result.cause).toBe('healthy');
    expect({ mode: status.mode, severity: status.severity, startedBy: status.startedBy, target: status.target }).toEqual({
      mode: 'plan',
      severity: 'P1',
      startedBy: 'alertmanager:ApiErrorRateHigh',
      target: `${namespace}/${name}`,
    });
  });

  test('resolved: the run it started, waiting for approval, ends cancelled and applies nothing; a run a person started is left alone', async () => {
    const name = await scratch('ab-resolve', outOfMemory);
    await failingPod(kc, namespace, `app=${name}`, 'OOMKilled');
    const before = (await apps.readNamespacedDeployment(name, namespace)).body;
    const labels = { deployment: name, remediation: 'execute' };

    await withWorker(config, async ({ client: workerClient, taskQueue }) => {
      const runbooks = createRunbookClient({ client: workerClient, taskQueue });
      const started = await postToBridge(bridge.url, alertNotification([firing(labels)]), token);
      expect(started.status).toBe(200);
      const pending = await pendingOf(runbooks, runId(name), 'raise-memory-limit');
      expect(pending.change.summary).toContain('256Mi -> 384Mi');
      expect((await runbooks.getStatus(runId(name))).mode).toBe('execute');

      const stop = await postToBridge(bridge.url, alertNotification([resolved(labels)]), token);
      expect(stop.status).toBe(200);
      expect(stop.body.signalled).toEqual([{ alertname: 'ApiErrorRateHigh', fingerprint: expect.any(String), workflowId: runId(name), runId: started.body.started[0]!.runId }]);
      const result = await runbooks.waitForResult<PodCrashLoopResult>(runId(name));
      expect(result.outcome).toBe('cancelled');
      expect(result.timeline.filter((e) => e.event === 'cancelled').map((e) => [e.by, e.reason])).toEqual([['alerting', 'alert resolved: ApiErrorRateHigh']]);
      expect(result.timeline.filter((e) => e.event === 'applied')).toEqual([]);

      // The run is over: resolving again changes nothing.
      const late = await postToBridge(bridge.url, alertNotification([resolved(labels)]), token);
      expect([late.status, late.body.signalled, late.body.skipped.map((s) => s.reason)]).toEqual([200, [], [`run ${runId(name)} already completed`]]);

      // Someone's own run on the same target: the alert did not start it, so its resolution does not stop it.
      await runbooks.startRunbook('podCrashLoop', { deployment: name, mode: 'execute' }, { startedBy: 'erin' });
      await pendingOf(runbooks, runId(name), 'raise-memory-limit');
      const notTheirs = await postToBridge(bridge.url, alertNotification([resolved(labels)]), token);
      expect([notTheirs.status, notTheirs.body.signalled, notTheirs.body.skipped.map((s) => s.reason)]).toEqual([200, [], [`run ${runId(name)} was started by erin, not by an alert`]]);
      expect((await runbooks.getStatus(runId(name))).pending?.stepId).toBe('raise-memory-limit');
    });
    const after = (await apps.readNamespacedDeployment(name, namespace)).body;
    expect(after.metadata?.generation).toBe(before.metadata?.generation);
    expect(after.spec!.template.spec!.containers[0]!.resources?.limits?.memory).toBe('256Mi');
  });

  test('a resolved alert with no run signals nothing; one whose run a firing alert of the same notification wants is sent after the firing one', async () => {
    const absent = unique('ab-none');
    const none = await postToBridge(bridge.url, alertNotification([resolved({ deployment: absent })]), token);
    expect([none.status, none.body.signalled, none.body.skipped.map((s) => s.reason)]).toEqual([200, [], [`no run ${runId(absent)}`]]);

    // Two pods' memory alerts of one deployment: one resolved, one still firing (no worker: the run stays in flight).
    const name = unique('ab-wanted');
    made.push(name);
    const memory = (status: 'firing' | 'resolved', pod: string) => ({ status, labels: { alertname: 'MemoryUsageHigh', namespace, deployment: 'short-drama-app', container: 'app', pod } });
    const routes = [
      { alertname: 'MemoryUsageHigh', match: {}, runbook: 'podCrashLoop', severity: 'P2' as const, mode: 'plan' as const, inputFromLabels: { container: 'container' }, input: { deployment: name } },
    ];
    const own = await startAlertBridge({ client, taskQueue: config.temporal.taskQueue, alerting: { ...config.alerting, routes }, listen: '127.0.0.1:0', log });
    try {
      const answer = await postToBridge(own.url, alertNotification([memory('resolved', 'a'), memory('firing', 'b')]), token);
      expect(answer.status).toBe(200);
      expect(answer.body.started.map((s) => s.workflowId)).toEqual([runId(name)]);
      // The run forgets pod a but does not stop: pod b's alertFiring reached it first (see alert-firing-set.test.ts).
      expect(answer.body.signalled.map((s) => [s.workflowId, s.runId])).toEqual([[runId(name), answer.body.started[0]!.runId]]);
      expect(answer.body.skipped).toEqual([]);
      const history = await client.workflow.getHandle(runId(name)).fetchHistory();
      const signals = history.events!.flatMap((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? []);
      expect(signals).toEqual(['alertFiring', 'alertResolved']);
    } finally {
      await own.close();
    }
  });

  test('a bad body gets 400 with what is wrong, and starts nothing; a notification of only bad alerts gets 422', async () => {
    const notJson = await postToBridge(bridge.url, '{"version": "4", ', token);
    expect([notJson.status, notJson.body.error]).toEqual([400, 'invalid Alertmanager payload: the body is not JSON']);

    const badShape = await postToBridge(bridge.url, { version: '3', status: 'firing', alerts: [{ status: 'burning', labels: { severity: 'critical' }, startsAt: 'yesterday' }] }, token);
    expect(badShape.status).toBe(400);
    expect(badShape.body.error).toBe(
      'invalid Alertmanager payload: version: expected "4" (Alertmanager webhook payload version 4); alerts.0.status: expected "firing" or "resolved"; alerts.0.labels.alertname: expected the alertname label; alerts.0.startsAt: expected an RFC 3339 time; alerts.0.fingerprint: expected the alert fingerprint',
    );
    const noAlerts = await postToBridge(bridge.url, { version: '4', status: 'firing', alerts: [] }, token);
    expect([noAlerts.status, noAlerts.body.error]).toEqual([400, 'invalid Alertmanager payload: alerts: expected at least one alert']);

    // Every alert bad (a label that is no Kubernetes name): 422, Alertmanager logs it and does not retry; nothing starts.
    const allBad = await postToBridge(bridge.url, alertNotification([firing({ deployment: 'Not_A_Name' })]), token);
    expect(allBad.status).toBe(422);
    expect(allBad.body.failed).toEqual([
      { alertname: 'ApiErrorRateHigh', fingerprint: expect.any(String), status: 'firing', reason: expect.stringMatching(/gives podCrashLoop a bad input: deployment: /), retryable: false },
    ]);
    expect(allBad.body.started).toEqual([]);
    expect(await exists(runId('Not_A_Name'))).toBe(false);
    expect(logLines.filter((line) => line.includes('"message":"notification refused","status":400')).length).toBeGreaterThanOrEqual(3);

    const tooBig = await postToBridge(bridge.url, JSON.stringify({ padding: 'x'.repeat(1024 * 1024) }), token);
    expect([tooBig.status, tooBig.body.error]).toEqual([413, 'body larger than 1048576 bytes']);
    const get = await fetch(`${bridge.url}/alertmanager`);
    expect(get.status).toBe(405);
  });

  test('an alert no route knows is answered 200 (no retries), logged, and starts nothing', async () => {
    const unknown = await postToBridge(bridge.url, alertNotification([{ status: 'firing', labels: { alertname: 'CoffeeMachineEmpty', namespace } }]), token);
    expect(unknown.status).toBe(200);
    expect(unknown.body).toMatchObject({ started: [], signalled: [], skipped: [{ alertname: 'CoffeeMachineEmpty', status: 'firing', reason: 'no route for alert CoffeeMachineEmpty' }] });
    expect(logLines.some((line) => line.includes('"message":"alert ignored: no route for alert CoffeeMachineEmpty"'))).toBe(true);

    // A known name whose labels fit no route (memory of the database: neither Redis nor the app).
    const database = await postToBridge(
      bridge.url,
      alertNotification([{ status: 'firing', labels: { alertname: 'MemoryUsageHigh', namespace, deployment: 'postgres', container: 'postgres' } }]),
      token,
    );
    expect([database.status, database.body.started, database.body.skipped.map((s) => s.reason)]).toEqual([200, [], ['no route for MemoryUsageHigh matches its labels']]);
    expect(await exists(`podCrashLoop/${namespace}/postgres`)).toBe(false);
  });

  test('a missing or wrong bearer token gets 401 and starts nothing', async () => {
    const name = unique('ab-token');
    const body = alertNotification([firing({ deployment: name })]);
    const wrongToken = `${token.slice(0, -1)}${token.endsWith('0') ? '1' : '0'}`;
    for (const presented of [undefined, wrongToken, token.toUpperCase()]) {
      const answer = await postToBridge(bridge.url, body, presented);
      expect([answer.status, answer.body.error, answer.headers.get('www-authenticate')]).toEqual([401, 'missing or wrong bearer token', 'Bearer']);
    }
    expect(await exists(runId(name))).toBe(false);
    expect(logLines.join('\n')).not.toContain(wrongToken);
  });

  test('one bad alert beside two good ones: the good ones start, the body names the bad one, 207 (Alertmanager does not retry)', async () => {
    const [one, two] = [unique('ab-good1'), unique('ab-good2')];
    made.push(one, two);
    const bad = firing({ deployment: 'Not_A_Name' });
    const answer = await postToBridge(bridge.url, alertNotification([firing({ deployment: one }), bad, firing({ deployment: two })]), token);
    expect(answer.status).toBe(207);
    expect(answer.body.alerts.map((a) => [a.outcome, a.workflowId])).toEqual([
      ['started', runId(one)],
      ['failed', undefined],
      ['started', runId(two)],
    ]);
    expect(answer.body.failed).toEqual([
      {
        alertname: 'ApiErrorRateHigh',
        fingerprint: fingerprintOf(bad.labels),
        status: 'firing',
        reason: expect.stringMatching(/^alert ApiErrorRateHigh \(fingerprint [0-9a-f]{16}\) gives podCrashLoop a bad input: deployment: /),
        retryable: false,
      },
    ]);
    expect(answer.body.error).toContain(fingerprintOf(bad.labels));
    for (const name of [one, two]) expect((await client.workflow.getHandle(runId(name)).describe()).status.name).toBe('RUNNING');
    expect(await exists(runId('Not_A_Name'))).toBe(false);
    expect(logLines.some((line) => line.includes('"level":"error"') && line.includes(fingerprintOf(bad.labels)))).toBe(true);
  });

  test('a group of 200 alerts starts 200 runs with at most alerting.concurrency in flight; past the deadline the rest answer 503', async () => {
    const names = Array.from({ length: 200 }, (_, i) => unique(`ab-many${i}`));
    const late = Array.from({ length: 200 }, (_, i) => unique(`ab-late${i}`));
    // Runs only (no deployments, no worker): terminated here rather than after every later test.
    afterThis.push(() => terminateRuns(config.temporal, [...names, ...late].map(runId)));
    const alerts = names.map((deployment) => firing({ deployment }));
    const bounded = await startAlertBridge({ client, taskQueue: config.temporal.taskQueue, alerting: { ...config.alerting, concurrency: 4, deadlineMs: 60_000 }, listen: '127.0.0.1:0', log });
    try {
      const answer = await postToBridge(bounded.url, alertNotification(alerts), token);
      expect(answer.status).toBe(200);
      expect(answer.body.started.map((s) => s.workflowId).sort()).toEqual(names.map(runId).sort());
      expect(answer.body.maxInFlight).toBe(4);
    } finally {
      await bounded.close();
    }

    // One at a time against a deadline far too short for 200 starts: the first alerts start, the rest fail retryably, so 503.
    const hurried = await startAlertBridge({ client, taskQueue: config.temporal.taskQueue, alerting: { ...config.alerting, concurrency: 1, deadlineMs: 100 }, listen: '127.0.0.1:0', log });
    try {
      const answer = await postToBridge(hurried.url, alertNotification(late.map((deployment) => firing({ deployment }))), token);
      expect(answer.status).toBe(503);
      expect(answer.body.maxInFlight).toBe(1);
      const notReached = answer.body.failed.filter((f) => f.reason === "the notification's deadline passed before this alert was handled");
      expect(notReached.length).toBeGreaterThan(0);
      expect(notReached.every((f) => f.retryable)).toBe(true);
      expect(answer.body.started.length + answer.body.failed.length).toBe(200);
    } finally {
      await hurried.close();
    }
  });

  test('Temporal unreachable: 503, so Alertmanager retries', async () => {
    const down = Connection.lazy({ address: `127.0.0.1:${closedPort}` });
    const unreachable = await startAlertBridge({
      client: new Client({ connection: down }),
      taskQueue: config.temporal.taskQueue,
      alerting: config.alerting,
      listen: '127.0.0.1:0',
      log,
      deadlineMs: 3000,
    });
    try {
      // Each answer comes before Alertmanager's own 10 s timeout, whatever the client's connect timeout.
      let t0 = Date.now();
      const answer = await postToBridge(unreachable.url, alertNotification([firing({ deployment: unique('ab-down') })]), token);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(answer.status).toBe(503);
      expect(answer.body.failed).toEqual([expect.objectContaining({ retryable: true, reason: expect.stringMatching(/^Temporal unreachable or too slow: /) })]);
      expect(answer.body.started).toEqual([]);
      // A permanently bad alert beside it does not hide the transient failure: still 503, so the good alert comes again.
      t0 = Date.now();
      const mixed = await postToBridge(unreachable.url, alertNotification([firing({ deployment: 'Not_A_Name' }), firing({ deployment: unique('ab-down') })]), token);
      expect([mixed.status, mixed.body.failed.map((f) => f.retryable)]).toEqual([503, [false, true]]);
      expect(Date.now() - t0).toBeLessThan(10_000);
      // Unknown alerts need no Temporal: still 200.
      const unknown = await postToBridge(unreachable.url, alertNotification([{ status: 'firing', labels: { alertname: 'CoffeeMachineEmpty' } }]), token);
      expect(unknown.status).toBe(200);
    } finally {
      await unreachable.close();
      await down.close();
    }
  });
});
