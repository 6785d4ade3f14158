import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { createRunbookClient, type RunbookClient } from '../../client';
import { startAlertBridge, type AlertBridge } from '../../client/alert-bridge';
import type { RunbookResultBase, RunbookStatus } from '../../common/runbook';
import type { AlertRoute } from '../../config/alerting';
import { waitUntil } from '../../scripts/testbed/processes';
import { alertFiringSignal, alertResolvedSignal, approveSignal } from '../../common/messages';
import { alertNotification, fingerprintOf, postToBridge, type TestAlert } from '../helpers/alert-notifications';
import { pendingOf, readBucketText, terminateRuns } from '../helpers/runbook-runs';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { TestTargets } from '../helpers/test-target';
import { testbedConfig } from '../helpers/testbed';
import { withWorker } from '../helpers/worker';
import { extraCatalog } from '../workflows/test-catalog';

/**
 * A run wanted by several alerts (several Alertmanager notifications, other alertnames or
 * fingerprints routed to the same workflow id): the kernel keeps the fingerprints that want the
 * run and stops it only when the last one resolves. The bridge over real HTTP and the kernel test
 * runbook (test/workflows) on the test bed's Temporal server, in execute mode so the run waits at
 * the approval gate where a resolution would stop it.
 */
describe('alerts that share a run', () => {
  const targets = new TestTargets();
  const config = testbedConfig({ RUNBOOK_APPROVERS: JSON.stringify([{ id: 'bob', roles: ['l2'] }]), ESCALATION_P2: '1h' });
  const token = config.alerting.token!;
  const route = (alertname: string): AlertRoute => ({
    alertname,
    match: {},
    runbook: 'kernelTestRunbook',
    severity: 'P2',
    mode: 'execute',
    inputFromLabels: { target: 'target' },
    input: { steps: [{ id: 'restart', title: 'Restart' }] },
  });
  const made: string[] = [];
  let connection: Connection;
  let bridge: AlertBridge;

  const newTarget = () => {
    const target = `test/${randomUUID()}`;
    made.push(target);
    return target;
  };
  const workflowIdOf = (target: string) => `kernelTestRunbook/${target}`;
  const post = (alerts: TestAlert[]) => postToBridge(bridge.url, alertNotification(alerts), token);
  const events = (status: RunbookStatus | RunbookResultBase, event: string) => status.timeline.filter((e) => e.event === event);

  async function withKernel<T>(body: (runbooks: RunbookClient, client: Client) => Promise<T>): Promise<T> {
    return withWorker(config, ({ client, taskQueue }) => body(createRunbookClient({ client, taskQueue, catalog: extraCatalog }), client), {
      workflowsPath: require.resolve('../workflows'),
      activities: targets.activities(),
    });
  }

  beforeAll(async () => {
    connection = await Connection.connect({ address: config.temporal.address });
    const client = new Client({ connection, namespace: config.temporal.namespace });
    bridge = await startAlertBridge({
      client,
      taskQueue: config.temporal.taskQueue,
      alerting: { ...config.alerting, routes: [route('TestAlertA'), route('TestAlertB')] },
      catalog: extraCatalog,
      listen: '127.0.0.1:0',
      log: () => undefined,
    });
  });

  afterEach(async () => {
    await terminateRuns(
      config.temporal,
      made.flatMap((t) => [workflowIdOf(t), `lock/${t}`]),
    );
  });

  afterAll(async () => {
    await bridge?.close();
    await connection?.close();
  });

  test('A starts the run, B (another notification) joins; A resolved leaves it running with B still firing; B resolved cancels it; a repeated firing changes nothing', async () => {
    const target = newTarget();
    const workflowId = workflowIdOf(target);
    const a = { alertname: 'TestAlertA', target, severity: 'warning' };
    const b = { alertname: 'TestAlertB', target, severity: 'warning' };
    const [fa, fb] = [fingerprintOf(a), fingerprintOf(b)];

    const result = await withKernel(async (runbooks, client) => {
      const first = await post([{ status: 'firing', labels: a }]);
      expect([first.status, first.body.started]).toEqual([200, [{ alertname: 'TestAlertA', fingerprint: fa, runbook: 'kernelTestRunbook', workflowId, runId: expect.any(String) }]]);
      const { runId } = first.body.started[0]!;
      await pendingOf(runbooks, workflowId, 'restart');

      // Alertmanager repeats a firing alert every repeat_interval: the same run, the same single entry.
      const again = await post([{ status: 'firing', labels: a }]);
      expect([again.status, again.body.started.map((s) => s.runId)]).toEqual([200, [runId]]);
      const joined = await post([{ status: 'firing', labels: b }]);
      expect([joined.status, joined.body.started.map((s) => [s.alertname, s.fingerprint, s.runId])]).toEqual([200, [['TestAlertB', fb, runId]]]);
      // Signals are handled in order: once B is recorded, A's repetition was handled before it.
      await waitUntil('B among the alerts that want the run', async () => (await runbooks.getStatus(workflowId)).alertsFiring?.length === 2);
      const both = await runbooks.getStatus(workflowId);
      expect(both.startedBy).toBe('alertmanager:TestAlertA');
      expect(both.alertsFiring).toEqual([
        { alert: 'TestAlertA', fingerprint: fa },
        { alert: 'TestAlertB', fingerprint: fb },
      ]);
      // Each alert once, with a count (the status lists them all).
      expect(events(both, 'alert-firing').map((e) => e.detail)).toEqual([`alert TestAlertA (${fa}) joined; 1 firing`, `alert TestAlertB (${fb}) joined; 2 firing`]);

      // A resolves: B still wants the run, which keeps waiting for approval.
      const resolvedA = await post([{ status: 'resolved', labels: a }]);
      expect([resolvedA.status, resolvedA.body.signalled]).toEqual([200, [{ alertname: 'TestAlertA', fingerprint: fa, workflowId, runId }]]);
      await waitUntil('A resolution recorded', async () => events(await runbooks.getStatus(workflowId), 'alert-resolved').length > 0);
      const onlyB = await runbooks.getStatus(workflowId);
      expect(events(onlyB, 'alert-resolved').map((e) => [e.by, e.detail])).toEqual([['alerting', `alert TestAlertA (${fa}) resolved; 1 still firing`]]);
      expect(onlyB.alertsFiring).toEqual([{ alert: 'TestAlertB', fingerprint: fb }]);
      expect(events(onlyB, 'cancelled')).toEqual([]);
      expect(onlyB.pending?.stepId).toBe('restart');
      expect((await client.workflow.getHandle(workflowId).describe()).status.name).toBe('RUNNING');

      // B, which did not start the run, resolves: the last alert that wanted it, so it stops.
      const resolvedB = await post([{ status: 'resolved', labels: b }]);
      expect([resolvedB.status, resolvedB.body.signalled]).toEqual([200, [{ alertname: 'TestAlertB', fingerprint: fb, workflowId, runId }]]);
      return runbooks.waitForResult<RunbookResultBase>(workflowId);
    });
    expect(result.outcome).toBe('cancelled');
    expect(events(result, 'cancelled').map((e) => [e.by, e.reason])).toEqual([['alerting', 'alert resolved: TestAlertB']]);
    expect(events(result, 'alert-firing')).toHaveLength(2);
    expect(targets.applies.filter((x) => x.target === target)).toEqual([]);
  });

  test('kernel: alertResolved without a fingerprint stops at once; an unknown fingerprint stops a run with no recorded alert only if that alert started it', async () => {
    const legacy = newTarget();
    const untracked = newTarget();
    const steps = [{ id: 'restart', title: 'Restart' }];
    await withKernel(async (runbooks, client) => {
      // Older clients send no fingerprint: the run stops although alerts still want it (as before).
      const { workflowId: legacyId } = await runbooks.startRunbook('kernelTestRunbook', { target: legacy, mode: 'execute', severity: 'P2', steps }, { startedBy: 'alertmanager:TestAlertA' });
      await pendingOf(runbooks, legacyId, 'restart');
      const legacyRun = client.workflow.getHandle(legacyId);
      await legacyRun.signal(alertFiringSignal, { alert: 'TestAlertA', fingerprint: 'fa' });
      await legacyRun.signal(alertFiringSignal, { alert: 'TestAlertB', fingerprint: 'fb' });
      await runbooks.alertResolved(legacyId, 'TestAlertA');
      const legacyResult = await runbooks.waitForResult<RunbookResultBase>(legacyId);
      expect(legacyResult.outcome).toBe('cancelled');
      expect(events(legacyResult, 'cancelled').map((e) => [e.by, e.reason])).toEqual([['alerting', 'alert resolved: TestAlertA']]);

      // A run that recorded no alert (started before alerts were tracked, by TestAlertA).
      const { workflowId } = await runbooks.startRunbook('kernelTestRunbook', { target: untracked, mode: 'execute', severity: 'P2', steps }, { startedBy: 'alertmanager:TestAlertA' });
      const pending = await pendingOf(runbooks, workflowId, 'restart');
      const run = client.workflow.getHandle(workflowId);
      // Another alert's resolution: it never wanted this run, so nothing changes.
      await run.signal(alertResolvedSignal, { alert: 'TestAlertB', fingerprint: 'fb' });
      // A refused decision is recorded: once it is, the resolution before it was handled.
      await run.signal(approveSignal, { stepId: 'restart', planHash: pending.planHash, approver: 'alertmanager:TestAlertA', reason: 'marker' });
      await waitUntil('the refused decision recorded', async () => events(await runbooks.getStatus(workflowId), 'refused').length === 1);
      const still = await runbooks.getStatus(workflowId);
      expect(events(still, 'cancelled')).toEqual([]);
      expect([still.pending?.stepId, still.alertsFiring]).toEqual(['restart', undefined]);
      // The alert that started it resolves: it stops, as it did before fingerprints.
      await run.signal(alertResolvedSignal, { alert: 'TestAlertA', fingerprint: 'fa' });
      const result = await runbooks.waitForResult<RunbookResultBase>(workflowId);
      expect(result.outcome).toBe('cancelled');
      expect(events(result, 'cancelled').map((e) => [e.by, e.reason])).toEqual([['alerting', 'alert resolved: TestAlertA']]);
    });
    expect(targets.applies.filter((x) => x.target === legacy || x.target === untracked)).toEqual([]);
  });
  test('a start the server refuses (a workflow id over its length limit) fails that alert for good; the other starts; 207', async () => {
    const good = newTarget();
    const tooLong = `test/${'x'.repeat(1100)}`;
    const answer = await post([
      { status: 'firing', labels: { alertname: 'TestAlertA', target: tooLong } },
      { status: 'firing', labels: { alertname: 'TestAlertA', target: good } },
    ]);
    expect(answer.status).toBe(207);
    expect(answer.body.failed).toEqual([expect.objectContaining({ alertname: 'TestAlertA', retryable: false, reason: expect.stringMatching(/^Temporal refused: /) })]);
    expect(answer.body.started.map((s) => s.workflowId)).toEqual([workflowIdOf(good)]);
  });

  test('400 alerts join one run, 30 decisions are refused, then all resolve: the run ends, writes its report, and its history stays under 1 MiB', async () => {
    const target = newTarget();
    const workflowId = workflowIdOf(target);
    const alerts = Array.from({ length: 400 }, (_, i) => ({ alertname: i % 2 === 0 ? 'TestAlertA' : 'TestAlertB', target, severity: 'warning', instance: `pod-${i}` }));
    const reporting = (alertname: string): AlertRoute => ({ ...route(alertname), input: { ...route(alertname).input, report: true } });
    // One notification each way, as Alertmanager sends a large group; a deadline long enough for this machine.
    const roomy = await startAlertBridge({
      client: new Client({ connection, namespace: config.temporal.namespace }),
      taskQueue: config.temporal.taskQueue,
      alerting: { ...config.alerting, routes: [reporting('TestAlertA'), reporting('TestAlertB')], deadlineMs: 60_000 },
      catalog: extraCatalog,
      listen: '127.0.0.1:0',
      log: () => undefined,
    });
    try {
      const { result, history } = await withKernel(async (runbooks, client) => {
        const firing = await postToBridge(roomy.url, alertNotification(alerts.map((labels) => ({ status: 'firing' as const, labels }))), token);
        expect([firing.status, firing.body.started.length, new Set(firing.body.started.map((s) => s.runId)).size]).toEqual([200, 400, 1]);
        const pending = await pendingOf(runbooks, workflowId, 'restart');
        await waitUntil('all 400 alerts recorded', async () => (await runbooks.getStatus(workflowId)).alertsFiring?.length === 400, 120_000);
        // Refused decisions (the initiator may not approve) with long reasons: the first 20 recorded, cut short; the rest counted.
        const run = client.workflow.getHandle(workflowId);
        for (let i = 0; i < 30; i++) await run.signal(approveSignal, { stepId: 'restart', planHash: pending.planHash, approver: 'alertmanager:TestAlertA', reason: `refused ${i} ${'x'.repeat(500)}` });
        await waitUntil('20 refusals recorded', async () => events(await runbooks.getStatus(workflowId), 'refused').length === 20);

        const resolved = await postToBridge(roomy.url, alertNotification(alerts.map((labels) => ({ status: 'resolved' as const, labels }))), token);
        expect(resolved.status).toBe(200);
        expect(resolved.body.failed).toEqual([]);
        const finished = await runbooks.waitForResult<RunbookResultBase>(workflowId);
        return { result: finished, history: await client.workflow.getHandle(workflowId).fetchHistory() };
      });
      expect(result.outcome).toBe('cancelled');
      const alertEntries = [...events(result, 'alert-firing'), ...events(result, 'alert-resolved')];
      expect(alertEntries).toHaveLength(100);
      expect(events(result, 'refused')).toHaveLength(20);
      expect(Math.max(...events(result, 'refused').map((e) => e.reason!.length))).toBe(200);
      expect(events(result, 'not-recorded').map((e) => e.detail)).toEqual([
        '699 further alert joins and resolutions after the first 100, counted only',
        '10 further refused decisions after the first 20, counted only',
      ]);
      expect(await readBucketText(result.report!.markdownKey)).toContain('10 further refused decisions after the first 20, counted only');
      const size = Buffer.byteLength(historyToJSON(history));
      expect(size).toBeLessThan(1024 * 1024);
    } finally {
      await roomy.close();
    }
  }, 600_000);
});
