import { waitUntil } from '../../scripts/testbed/processes';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { closedPort, testbedEnv } from '../helpers/testbed';
import { failureOf } from '../helpers/failures';

async function setAppProfile(profile: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${testbedEnv().TESTBED_APP_METRICS_URL}/profile`, { method: 'POST', body: JSON.stringify(profile) });
  expect(response.ok).toBe(true);
}

describe('Prometheus activities (real Prometheus 2.42 scraping the sandbox app)', () => {
  let harness: ActivityHarness;
  beforeAll(() => {
    harness = activityHarness();
  });
  afterAll(() => harness.close());

  test('instantQuery returns labelled samples', async () => {
    const result = await harness.run('instantQuery', { query: 'up' });
    expect(result.samples.map((s) => s.labels.job).sort()).toEqual(expect.arrayContaining(['prometheus', 'short-drama-app', 'temporal']));
    expect(result.samples.every((s) => s.value === 1)).toBe(true);
    expect(result.truncated).toBe(false);
  });

  test('rangeQuery returns points over the window', async () => {
    const end = new Date();
    const start = new Date(end.getTime() - 60_000);
    const result = await harness.run('rangeQuery', { query: 'up{job="prometheus"}', start: start.toISOString(), end: end.toISOString(), stepSeconds: 10 });
    expect(result.series).toHaveLength(1);
    expect(result.series[0]!.points.length).toBeGreaterThan(0);
    expect(result.series[0]!.points.every(([time, value]) => !Number.isNaN(Date.parse(time)) && value === 1)).toBe(true);
  });

  test("the manual's named queries answer from the app's metrics, and follow an injected slowdown", async () => {
    const healthy = await harness.run('manualQuery', { name: 'p95LatencySeconds' });
    expect(healthy.query).toBe('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))');
    expect(healthy.value).toEqual(expect.any(Number));
    const hitRate = await harness.run('manualQuery', { name: 'cacheHitRatePercent' });
    expect(hitRate.value).toBeGreaterThan(80);
    const connections = await harness.run('manualQuery', { name: 'databaseConnectionsActive' });
    expect(connections.value).toBe(12);
    // A short window, so the test sees the change in seconds rather than the manual's five minutes.
    const p95 = async () => (await harness.run('manualQuery', { name: 'p95LatencySeconds', window: '20s' })).value ?? Number.NaN;
    try {
      await setAppProfile({ reset: true });
      await waitUntil('P95 below 2 s on the healthy profile', async () => (await p95()) < 2, 90_000);
      await setAppProfile({ p95Seconds: 6 });
      await waitUntil('P95 above 2 s after the injected slowdown', async () => (await p95()) > 2, 90_000);
    } finally {
      await setAppProfile({ reset: true });
    }
  });

  test('a bad query is InvalidInput with Prometheus’ own message; bad arguments are refused before any call', async () => {
    const bad = await failureOf(harness.run('instantQuery', { query: 'rate(' }));
    expect(bad.type).toBe('InvalidInput');
    expect(bad.nonRetryable).toBe(true);
    expect(bad.message).toMatch(/bad_data/);
    expect((await failureOf(harness.run('instantQuery', { query: '  ' }))).type).toBe('InvalidInput');
    const now = new Date().toISOString();
    expect((await failureOf(harness.run('rangeQuery', { query: 'up', start: now, end: now, stepSeconds: 10 }))).message).toMatch(/end must be after start/);
    expect((await failureOf(harness.run('manualQuery', { name: 'nope' as never }))).message).toMatch(/unknown query "nope"/);
    expect((await failureOf(harness.run('manualQuery', { name: 'p95LatencySeconds', window: '5m]) or vector(1' }))).message).toMatch(/window must be a duration/);
  });

  test('Prometheus down is Transient (retried); not configured is a clear InvalidInput', async () => {
    const down = activityHarness({ PROMETHEUS_URL: `http://127.0.0.1:${closedPort}` });
    try {
      const failure = await failureOf(down.run('instantQuery', { query: 'up' }));
      expect(failure.type).toBe('Transient');
      expect(failure.nonRetryable).toBe(false);
      expect(failure.message).toMatch(/ECONNREFUSED/);
    } finally {
      await down.close();
    }
    const none = activityHarness({ PROMETHEUS_URL: undefined });
    try {
      expect((await failureOf(none.run('instantQuery', { query: 'up' }))).message).toMatch(/Prometheus is not configured/);
    } finally {
      await none.close();
    }
  });
});
