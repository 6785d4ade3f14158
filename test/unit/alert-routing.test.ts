import { catalog } from '../../common/catalog';
import { defaultAlertRoutes } from '../../config/alerting';
import { routeAlert } from '../../client/alert-routing';
import type { WebhookAlert } from '../../client/alertmanager-payload';

const alert = (labels: Record<string, string>, status: WebhookAlert['status'] = 'firing'): WebhookAlert => ({
  status,
  labels: labels as WebhookAlert['labels'],
  annotations: {},
  startsAt: '2026-01-01T00:00:00Z',
  fingerprint: 'f00d',
});

/**
 * The default routes (the catalog's alert table) on alerts labelled as deploy/prometheus/runbook-alerts.yml
 * labels them: which runbook, which input, which run (workflow id).
 */
describe('default alert routes', () => {
  test.each([
    [{ alertname: 'ServiceUnavailable', deployment: 'short-drama-app', job: 'short-drama-app' }, 'podCrashLoop/short-drama-prod/short-drama-app', { deployment: 'short-drama-app', severity: 'P0' }],
    [
      { alertname: 'ApiErrorRateHigh', namespace: 'short-drama-prod', deployment: 'short-drama-app' },
      'podCrashLoop/short-drama-prod/short-drama-app',
      { namespace: 'short-drama-prod', deployment: 'short-drama-app', severity: 'P1' },
    ],
    // The app's metric: its deployment label must not become the database deployment.
    [
      { alertname: 'DatabaseConnectionsZero', namespace: 'short-drama-staging', deployment: 'short-drama-app' },
      'dbConnectionExhaustion/short-drama-staging/postgres',
      { namespace: 'short-drama-staging', severity: 'P0' },
    ],
    [
      { alertname: 'ApiLatencyHigh', namespace: 'short-drama-prod', deployment: 'short-drama-app' },
      'dailyHealthCheck/short-drama-prod',
      { namespace: 'short-drama-prod', appDeployment: 'short-drama-app', only: ['usage', 'slow-statements'], severity: 'P2' },
    ],
    [
      { alertname: 'DiskUsageHigh', namespace: 'short-drama-prod', persistentvolumeclaim: 'redis-data' },
      'diskPressure/short-drama-prod/redis-data',
      { namespace: 'short-drama-prod', pvc: 'redis-data', severity: 'P2' },
    ],
    [
      { alertname: 'MemoryUsageHigh', namespace: 'short-drama-prod', deployment: 'redis', container: 'redis', pod: 'redis-7d9c6b5f4-x2x9z' },
      'redisMemoryPressure/short-drama-prod/redis',
      { namespace: 'short-drama-prod', deployment: 'redis', container: 'redis', severity: 'P2' },
    ],
    [
      { alertname: 'MemoryUsageHigh', namespace: 'short-drama-prod', deployment: 'short-drama-app', container: 'app', pod: 'short-drama-app-5f7b4c9d6-bcdfg' },
      'podCrashLoop/short-drama-prod/short-drama-app',
      { namespace: 'short-drama-prod', deployment: 'short-drama-app', container: 'app', severity: 'P2' },
    ],
  ])('%j → %s', (labels, workflowId, input) => {
    const decision = routeAlert(alert(labels), defaultAlertRoutes, catalog);
    expect(decision).toEqual({
      kind: 'routed',
      alertname: labels.alertname,
      status: 'firing',
      fingerprint: 'f00d',
      runbook: workflowId.split('/')[0],
      input: { ...input, mode: 'plan' },
      args: expect.objectContaining({ ...input, mode: 'plan', startedBy: `alertmanager:${labels.alertname}` }),
      startedBy: `alertmanager:${labels.alertname}`,
      workflowId,
    });
  });

  test('a resolved alert maps to the same run as when it fired', () => {
    const labels = { alertname: 'DiskUsageHigh', namespace: 'short-drama-prod', persistentvolumeclaim: 'postgres-pvc' };
    const fired = routeAlert(alert(labels), defaultAlertRoutes, catalog);
    const resolved = routeAlert(alert(labels, 'resolved'), defaultAlertRoutes, catalog);
    expect(resolved).toMatchObject({ kind: 'routed', status: 'resolved', workflowId: 'diskPressure/short-drama-prod/postgres-pvc' });
    expect(fired).toMatchObject({ workflowId: 'diskPressure/short-drama-prod/postgres-pvc' });
  });

  test('a fixed input wins over labels; a bad label value is refused with the field', () => {
    const routes = [{ alertname: 'ApiErrorRateHigh', match: {}, runbook: 'podCrashLoop', severity: 'P1' as const, mode: 'execute' as const, input: { deployment: 'checkout' } }];
    expect(routeAlert(alert({ alertname: 'ApiErrorRateHigh', deployment: 'short-drama-app' }), routes, catalog)).toMatchObject({
      kind: 'routed',
      workflowId: 'podCrashLoop/short-drama-prod/checkout',
      input: { deployment: 'checkout', mode: 'execute', severity: 'P1' },
    });
    expect(routeAlert(alert({ alertname: 'ApiErrorRateHigh', namespace: 'Short Drama' }), routes, catalog)).toEqual({
      kind: 'invalid',
      alertname: 'ApiErrorRateHigh',
      fingerprint: 'f00d',
      problem: expect.stringMatching(/^alert ApiErrorRateHigh \(fingerprint f00d\) gives podCrashLoop a bad input: namespace: /),
    });
  });
});
