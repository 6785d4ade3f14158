import { AppsV1Api } from '@kubernetes/client-node';
import { startAlertBridge, type AlertBridge, type NotificationReport } from '../../client/alert-bridge';
import { waitUntil } from '../../scripts/testbed/processes';
import type { PodCrashLoopResult } from '../../workflows/pod-crash-loop';
import { deleteDeployment, outOfMemory, scratchApp, unique } from '../helpers/kube-activity-scratch';
import { adminKubeConfig } from '../helpers/kube-cluster';
import { failingPod } from '../helpers/kube-pods';
import { lockProjects } from '../helpers/app-pods';
import { pendingOf, terminateRuns } from '../helpers/runbook-runs';
import { testbedConfig, testbedEnv } from '../helpers/testbed';
import { withRunbooks } from '../helpers/worker';

const namespace = 'short-drama-prod';

async function activeAlerts(alertname: string): Promise<unknown[]> {
  const filter = encodeURIComponent(`alertname="${alertname}"`);
  const response = await fetch(`${testbedEnv().TESTBED_ALERTMANAGER_URL}/api/v2/alerts?active=true&filter=${filter}`, { signal: AbortSignal.timeout(5000) });
  return (await response.json()) as unknown[];
}

/**
 * The whole chain on real servers: a lock on the app's projects table makes the app's users'
 * requests fail (504 after its statement timeout) → the error rate Prometheus scrapes from the
 * app's pods (the shipped rules, test bed copy) → Alertmanager → the bridge on the test bed port Alertmanager posts to, with its
 * token → podCrashLoop on a crash-looping scratch Deployment, waiting for approval → the lock
 * released, the error rate back to normal → the resolved notification → the run ends cancelled, nothing applied.
 */
describe('alerts end to end', () => {
  const kc = adminKubeConfig();
  const apps = kc.makeApiClient(AppsV1Api);
  const name = unique('alert-e2e');
  const workflowId = `podCrashLoop/${namespace}/${name}`;
  // The route runs the scratch Deployment in execute mode so the run waits at the approval gate.
  const config = testbedConfig({
    ALERT_ROUTES: JSON.stringify([{ alertname: 'ApiErrorRateHigh', runbook: 'podCrashLoop', severity: 'P1', mode: 'execute', input: { deployment: name } }]),
    RUNBOOK_APPROVERS: JSON.stringify([{ id: 'bob', roles: ['l2'] }]),
  });
  const reports: NotificationReport[] = [];
  let bridge: AlertBridge | undefined;

  let lock: Awaited<ReturnType<typeof lockProjects>> | undefined;

  afterAll(async () => {
    await lock?.release();
    await bridge?.close();
    await terminateRuns(config.temporal, [workflowId, `lock/${namespace}/${name}`]);
    await deleteDeployment(kc, name);
  });

  test('a high error rate starts podCrashLoop through Alertmanager; its resolution stops the run before anything is applied', async () => {
    await scratchApp(kc, name, { env: outOfMemory });
    await failingPod(kc, namespace, `app=${name}`, 'OOMKilled');
    const before = (await apps.readNamespacedDeployment(name, namespace)).body;
    // An ApiErrorRateHigh left firing by something else would reach the bridge the moment it listens.
    await waitUntil('no active ApiErrorRateHigh in Alertmanager', async () => (await activeAlerts('ApiErrorRateHigh')).length === 0, 60_000);

    const timings: Record<string, number> = {};
    const result = await withRunbooks(config, async ({ runbooks, client, taskQueue }) => {
      // On the test bed port and token Alertmanager posts with (ALERT_BRIDGE_LISTEN, ALERT_BRIDGE_TOKEN of the env file).
      bridge = await startAlertBridge({ client, taskQueue, alerting: config.alerting, log: () => undefined, onNotification: (r) => void reports.push(r) });
      try {
        const t0 = Date.now();
        lock = await lockProjects(testbedEnv().TESTBED_DATABASE_ADMIN_URL!);
        await waitUntil('Alertmanager to post the firing ApiErrorRateHigh and the bridge to start the run', () => reports.some((r) => r.started.some((s) => s.workflowId === workflowId)), 90_000);
        timings.firing = Date.now() - t0;
        const pending = await pendingOf(runbooks, workflowId, 'raise-memory-limit');
        expect(pending.change.summary).toContain('256Mi -> 384Mi');
        const status = await runbooks.getStatus(workflowId);
        expect({ mode: status.mode, severity: status.severity, startedBy: status.startedBy }).toEqual({ mode: 'execute', severity: 'P1', startedBy: 'alertmanager:ApiErrorRateHigh' });

        const t1 = Date.now();
        await lock.release();
        lock = undefined;
        await waitUntil('Alertmanager to post the resolved ApiErrorRateHigh and the bridge to signal the run', () => reports.some((r) => r.signalled.some((s) => s.workflowId === workflowId)), 90_000);
        timings.resolved = Date.now() - t1;
        return await runbooks.waitForResult<PodCrashLoopResult>(workflowId);
      } finally {
        // Before the worker's client closes: a later notification would otherwise find no connection.
        await bridge.close();
        bridge = undefined;
      }
    });
    console.log(`alerts end to end: firing reached the run ${timings.firing} ms after the error rate rose, the resolution ${timings.resolved} ms after it fell`);

    expect(result.outcome).toBe('cancelled');
    expect(result.timeline.filter((e) => e.event === 'cancelled').map((e) => [e.by, e.reason])).toEqual([['alerting', 'alert resolved: ApiErrorRateHigh']]);
    expect(result.timeline.filter((e) => e.event === 'applied')).toEqual([]);
    // The run knew which alert wanted it (alertFiring with the fingerprint Alertmanager gave).
    const joined = result.timeline.filter((e) => e.event === 'alert-firing');
    expect(joined.length).toBeGreaterThan(0);
    for (const entry of joined) expect(entry.detail).toMatch(/^alert ApiErrorRateHigh \([0-9a-f]+\) joined/);
    // Every notification was accepted (a 5xx would have made Alertmanager retry), and one run served them all.
    expect(reports.filter((r) => r.status !== 200)).toEqual([]);
    expect(new Set(reports.flatMap((r) => r.started.map((s) => s.runId))).size).toBe(1);
    const after = (await apps.readNamespacedDeployment(name, namespace)).body;
    expect(after.metadata?.generation).toBe(before.metadata?.generation);
    expect(after.spec!.template.spec!.containers[0]!.resources?.limits?.memory).toBe('256Mi');
  });
});
