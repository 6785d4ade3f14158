import { waitUntil } from '../../scripts/testbed/processes';
import { activityHarness, type ActivityHarness } from '../helpers/activity-context';
import { closedPort, testbedEnv } from '../helpers/testbed';
import { failureOf } from '../helpers/failures';
import { lockProjects } from '../helpers/app-pods';

describe("Prometheus activities (real Prometheus 2.42 scraping the sandbox app's pods)", () => {
  let harness: ActivityHarness;
  beforeAll(() => {
    harness = activityHarness();
  });
  afterAll(() => harness.close());

  test('instantQuery returns labelled samples', async () => {
    const result = await harness.run('instantQuery', { query: 'up' });
    expect(result.samples.map((s) => s.labels.job).sort()).toEqual(expect.arrayContaining(['prometheus', 'short-drama-app', 'temporal']));
    // The sandbox's own servers are up; the app's pods come and go, and job runbook-worker answers only while a worker runs.
    const alwaysUp = result.samples.filter((s) => !['short-drama-app', 'runbook-worker'].includes(s.labels.job ?? ''));
    expect(alwaysUp.filter((s) => s.value !== 1).map((s) => s.labels.job)).toEqual([]);
    // The app's targets come from Kubernetes service discovery: one per pod, with its namespace and name.
    const app = result.samples.filter((s) => s.labels.job === 'short-drama-app');
    expect(app.length).toBeGreaterThan(0);
    for (const sample of app) expect(sample.labels).toMatchObject({ namespace: 'short-drama-prod', pod: expect.stringMatching(/^short-drama-app-/) });
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

  test("the manual's named queries answer from the app's metrics, and follow a real slowdown", async () => {
    const healthy = await harness.run('manualQuery', { name: 'p95LatencySeconds' });
    expect(healthy.query).toBe('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))');
    expect(healthy.value).toEqual(expect.any(Number));
    // The app's users (app-traffic.js) mostly read the cached project count.
    const hitRate = await harness.run('manualQuery', { name: 'cacheHitRatePercent' });
    expect(hitRate.value).toBeGreaterThan(50);
    // Every pod's pool keeps two connections warm.
    const connections = await harness.run('manualQuery', { name: 'databaseConnectionsActive' });
    expect(connections.value).toBeGreaterThanOrEqual(2);
    // A short window, so the test sees the change in seconds rather than the manual's five minutes.
    const p95 = async () => (await harness.run('manualQuery', { name: 'p95LatencySeconds', window: '20s' })).value ?? Number.NaN;
    await waitUntil('P95 below 2 s', async () => (await p95()) < 2, 90_000);
    // A lock on projects: the users' requests wait past the app's 2 s statement timeout.
    const lock = await lockProjects(testbedEnv().TESTBED_DATABASE_ADMIN_URL!);
    try {
      await waitUntil('P95 above 2 s while projects is locked', async () => (await p95()) > 2, 90_000);
    } finally {
      await lock.release();
    }
    await waitUntil('P95 below 2 s again once the lock is gone', async () => (await p95()) < 2, 90_000);
  });

  describe('forecastQuery (least-squares trend over a range query)', () => {
    // vector(time()) is the evaluation time in seconds at every step: a line rising exactly 86400 per day.
    const end = '2026-06-01T00:00:00.000Z';
    const endSeconds = Date.parse(end) / 1000;

    test('vector(time()) over 30 days: slope 86400/day, r2 = 1, the forecast 90 days after the last point', async () => {
      const result = await harness.run('forecastQuery', { query: 'vector(time())', end });
      if (!result.available) throw new Error(`expected data, got: ${result.reason}`);
      expect(result).toMatchObject({
        query: 'vector(time())',
        seriesCount: 1,
        points: 30 * 24 + 1,
        from: '2026-05-02T00:00:00.000Z',
        to: end,
        first: endSeconds - 30 * 86_400,
        last: endSeconds,
        horizonDays: 90,
        forecastTime: '2026-08-30T00:00:00.000Z',
        daysOfData: 30,
      });
      expect(result.slopePerDay).toBeCloseTo(86_400, 4);
      expect(result.r2).toBeCloseTo(1, 9);
      expect(result.forecast).toBeCloseTo(endSeconds + 90 * 86_400, 2);
      expect(result.growthPercent).toBeCloseTo(((90 * 86_400) / endSeconds) * 100, 9);
    });

    test('lookback, horizon and step are honoured; without end the window ends now', async () => {
      const result = await harness.run('forecastQuery', { query: 'vector(time())', lookbackDays: 2, horizonDays: 7, stepSeconds: 600, end });
      if (!result.available) throw new Error(result.reason);
      expect(result).toMatchObject({ points: 2 * 144 + 1, from: '2026-05-30T00:00:00.000Z', daysOfData: 2, horizonDays: 7 });
      expect(result.forecast).toBeCloseTo(endSeconds + 7 * 86_400, 2);
      const before = Date.now();
      const now = await harness.run('forecastQuery', { query: 'vector(time())', lookbackDays: 1 });
      if (!now.available) throw new Error(now.reason);
      expect(Date.parse(now.to)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(now.to)).toBeLessThanOrEqual(Date.now());
    });

    test('several series are added up per timestamp (1 + 2 = a flat 3)', async () => {
      const result = await harness.run('forecastQuery', { query: 'vector(1) or label_replace(vector(2), "copy", "second", "", "")', lookbackDays: 1, end });
      if (!result.available) throw new Error(result.reason);
      expect(result).toMatchObject({ seriesCount: 2, points: 25, first: 3, last: 3, slopePerDay: 0, forecast: 3, growthPercent: 0, r2: 1 });
    });

    test('no data, or only NaN, is available: false with a reason (not an error)', async () => {
      const missing = await harness.run('forecastQuery', { query: 'runbook_forecast_test_metric_that_never_existed', end });
      expect(missing).toEqual({
        query: 'runbook_forecast_test_metric_that_never_existed',
        available: false,
        reason: expect.stringMatching(/no data .* 2026-05-02T00:00:00.000Z \.\. 2026-06-01T00:00:00.000Z/),
      });
      const nan = await harness.run('forecastQuery', { query: 'vector(0) / 0', lookbackDays: 1, end });
      expect(nan).toEqual({ query: 'vector(0) / 0', available: false, reason: expect.stringMatching(/no finite value/) });
    });

    test('a bad query is InvalidInput from Prometheus; bad arguments are refused before any call', async () => {
      const bad = await failureOf(harness.run('forecastQuery', { query: 'rate(' }));
      expect(bad.type).toBe('InvalidInput');
      expect(bad.nonRetryable).toBe(true);
      expect(bad.message).toMatch(/Prometheus range query rate\(: .*bad_data: .*parse error/);
      expect((await failureOf(harness.run('forecastQuery', { query: ' ' }))).message).toMatch(/query must be a non-empty PromQL expression/);
      expect((await failureOf(harness.run('forecastQuery', { query: 'up', lookbackDays: 0 }))).message).toMatch(/lookbackDays must be a number of days above 0/);
      expect((await failureOf(harness.run('forecastQuery', { query: 'up', horizonDays: -1 }))).message).toMatch(/horizonDays must be a number of days from 0/);
      expect((await failureOf(harness.run('forecastQuery', { query: 'up', end: 'last tuesday' }))).message).toMatch(/end must be an ISO time/);
      expect((await failureOf(harness.run('forecastQuery', { query: 'up', stepSeconds: 60 }))).message).toMatch(/too many points/);
      expect((await failureOf(harness.run('forecastQuery', { query: 'up', stepSeconds: 0 }))).message).toMatch(/stepSeconds must be a positive number/);
    });
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
      const forecast = await failureOf(down.run('forecastQuery', { query: 'vector(time())' }));
      expect(forecast.type).toBe('Transient');
      expect(forecast.message).toMatch(/Prometheus range query vector\(time\(\)\).*ECONNREFUSED/);
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
