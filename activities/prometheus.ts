import { fitLinearTrend, msPerDay, valueDaysAfterLastPoint, type TimedValue } from '../common/forecast';
import type { PreflightRow } from '../common/preflight';
import { callsTo, failure, invalidInput } from './errors';
import { notConfigured, runChecks } from './preflight-checks';

const inPrometheus = callsTo('Prometheus');

export interface PrometheusDeps {
  /** Absent when no Prometheus is configured. */
  prometheusUrl?: string;
  fetchTimeoutMs?: number;
}

interface PromResponse<T> {
  status: 'success' | 'error';
  data: T;
  errorType?: string;
  error?: string;
}

export interface InstantSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** GET against the Prometheus HTTP API; an `error` status becomes an exception with Prometheus' own message. */
export async function prometheusGet<T>(baseUrl: string, path: string, params: Record<string, string>, timeoutMs: number): Promise<T> {
  const url = new URL(path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = (await response.json().catch(() => undefined)) as PromResponse<T> | undefined;
  // statusCode lets classifyError tell a bad query (400/422) from a server in trouble (5xx).
  if (!body) throw Object.assign(new Error(`Prometheus ${path}: HTTP ${response.status} without a JSON body`), { statusCode: response.status });
  if (body.status !== 'success') {
    throw Object.assign(new Error(`Prometheus ${path}: ${body.errorType ?? 'error'}: ${body.error ?? `HTTP ${response.status}`}`), { statusCode: response.status });
  }
  return body.data;
}

/** The manual's PromQL (监控和告警 > 查询示例), by name, over a rate window (the manual uses 5m). */
export const manualQueries = {
  errorRatePercent: (w: string) => `sum(rate(http_requests_errors_total[${w}])) / sum(rate(http_requests_total[${w}])) * 100`,
  p95LatencySeconds: (w: string) => `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[${w}])))`,
  cacheHitRatePercent: (w: string) => `sum(rate(cache_hits_total[${w}])) / (sum(rate(cache_hits_total[${w}])) + sum(rate(cache_misses_total[${w}]))) * 100`,
  databaseConnectionsActive: () => 'sum(database_connections_active)',
} as const;
export type ManualQueryName = keyof typeof manualQueries;

export interface QuerySample {
  labels: Record<string, string>;
  value: number;
}

export interface InstantQueryResult {
  query: string;
  /** Evaluation time, ISO. */
  time: string;
  samples: QuerySample[];
  /** More series matched than were returned. */
  truncated: boolean;
}

export interface RangeQueryResult {
  query: string;
  series: Array<{ labels: Record<string, string>; points: Array<[time: string, value: number]> }>;
  truncated: boolean;
}

const maxSeries = 50;
/** Prometheus refuses range queries of more points per series. */
const maxPointsPerSeries = 11_000;

function toSeconds(time: string | undefined, what: string): string | undefined {
  if (time === undefined) return undefined;
  const ms = typeof time === 'string' ? Date.parse(time) : Number.NaN;
  if (Number.isNaN(ms)) throw invalidInput(`${what} must be an ISO time, got "${String(time)}"`);
  return String(ms / 1000);
}

function requireQuery(query: unknown): string {
  if (typeof query !== 'string' || !query.trim()) throw invalidInput('query must be a non-empty PromQL expression');
  return query;
}

/** A number of days up to ten years (the fallback when absent); anything else is InvalidInput naming the field. */
function days(value: unknown, name: string, fallback: number, zeroAllowed: boolean): number {
  if (value === undefined) return fallback;
  const ok = typeof value === 'number' && Number.isFinite(value) && (zeroAllowed ? value >= 0 : value > 0) && value <= 3650;
  if (!ok) throw invalidInput(`${name} must be a number of days ${zeroAllowed ? 'from 0' : 'above 0'} to 3650, got ${String(value)}`);
  return value;
}

/** A series of query_range as Prometheus sends it: [unix seconds, value as text]. */
interface RangeSeries {
  metric: Record<string, string>;
  values: Array<[number, string]>;
}

export interface ForecastQueryInput {
  /** PromQL; several result series are added up per timestamp (write sum(...) to control how). */
  query: string;
  /** Days of history the line is fitted to (default 30). */
  lookbackDays?: number;
  /** Days after the last point the forecast is for (default 90, "three months"). */
  horizonDays?: number;
  /** Resolution of the range query (default 3600: one point an hour). */
  stepSeconds?: number;
  /** ISO end of the lookback window (default now). */
  end?: string;
}

export interface ForecastAvailable {
  query: string;
  available: true;
  /** Series the query returned (added up per timestamp). */
  seriesCount: number;
  /** Points the line was fitted to. */
  points: number;
  /** Times of the first and last point, ISO. */
  from: string;
  to: string;
  /** Observed values at the first and last point. */
  first: number;
  last: number;
  slopePerDay: number;
  horizonDays: number;
  /** When the forecast is for (horizonDays after the last point), ISO. */
  forecastTime: string;
  /** The fitted line's value at forecastTime. */
  forecast: number;
  /** forecast against the last observed value, in percent; null when the last value is 0. */
  growthPercent: number | null;
  /** How well the line fits the history, 0..1 (see common/forecast.ts). */
  r2: number;
  /** Span between the first and last point. */
  daysOfData: number;
}

export interface ForecastUnavailable {
  query: string;
  available: false;
  reason: string;
}

export type ForecastQueryResult = ForecastAvailable | ForecastUnavailable;

/** Adds the series up per timestamp; NaN and ±Inf samples (e.g. 0/0) are left out rather than poisoning the sum. */
function sumPerTimestamp(series: RangeSeries[]): TimedValue[] {
  const sums = new Map<number, number>();
  for (const s of series) {
    for (const [t, text] of s.values) {
      const value = Number(text);
      if (Number.isFinite(value)) sums.set(t, (sums.get(t) ?? 0) + value);
    }
  }
  return [...sums.entries()].sort(([a], [b]) => a - b).map(([t, value]) => ({ timeMs: t * 1000, value }));
}

export function createPrometheusActivities({ prometheusUrl, fetchTimeoutMs = 5000 }: PrometheusDeps) {
  const requireUrl = (): string => {
    if (!prometheusUrl) throw failure('InvalidInput', 'Prometheus is not configured (PROMETHEUS_URL)');
    return prometheusUrl;
  };

  async function instantQuery({ query, time }: { query: string; time?: string }): Promise<InstantQueryResult> {
    requireQuery(query);
    const params: Record<string, string> = { query };
    const at = toSeconds(time, 'time');
    if (at) params.time = at;
    const data = await inPrometheus(`Prometheus query ${query}`, () => prometheusGet<{ result: InstantSample[] }>(requireUrl(), 'api/v1/query', params, fetchTimeoutMs));
    return {
      query,
      time: new Date(at ? Number(at) * 1000 : Date.now()).toISOString(),
      samples: data.result.slice(0, maxSeries).map((sample) => ({ labels: sample.metric, value: Number(sample.value[1]) })),
      truncated: data.result.length > maxSeries,
    };
  }

  /** query_range with its arguments checked first (rangeQuery and forecastQuery share it): every series, as Prometheus sent it. */
  async function fetchRangeSeries(query: string, startSeconds: number, endSeconds: number, stepSeconds: number): Promise<RangeSeries[]> {
    requireQuery(query);
    if (typeof stepSeconds !== 'number' || !Number.isFinite(stepSeconds) || !(stepSeconds > 0)) throw invalidInput(`stepSeconds must be a positive number, got ${String(stepSeconds)}`);
    if (endSeconds <= startSeconds) throw invalidInput('end must be after start');
    if ((endSeconds - startSeconds) / stepSeconds > maxPointsPerSeries)
      throw invalidInput(`too many points: widen stepSeconds (Prometheus allows ${maxPointsPerSeries.toLocaleString('en')} per series)`);
    const data = await inPrometheus(`Prometheus range query ${query}`, () =>
      prometheusGet<{ result: RangeSeries[] }>(requireUrl(), 'api/v1/query_range', { query, start: String(startSeconds), end: String(endSeconds), step: String(stepSeconds) }, fetchTimeoutMs),
    );
    return data.result;
  }

  return {
    instantQuery,

    async rangeQuery({ query, start, end, stepSeconds }: { query: string; start: string; end: string; stepSeconds: number }): Promise<RangeQueryResult> {
      if (start === undefined || end === undefined) throw invalidInput('start and end are required (ISO times)');
      const series = await fetchRangeSeries(query, Number(toSeconds(start, 'start')), Number(toSeconds(end, 'end')), stepSeconds);
      return {
        query,
        series: series.slice(0, maxSeries).map((s) => ({
          labels: s.metric,
          points: s.values.map(([t, v]): [string, number] => [new Date(t * 1000).toISOString(), Number(v)]),
        })),
        truncated: series.length > maxSeries,
      };
    },

    /**
     * Capacity planning (monthly review): a least-squares line through the last `lookbackDays` of
     * a query and its value `horizonDays` after the last point. No data is an answer
     * (available: false), not an error; Prometheus down or a bad query are classified failures.
     */
    async forecastQuery(input: ForecastQueryInput): Promise<ForecastQueryResult> {
      const query = requireQuery(input?.query);
      const lookbackDays = days(input.lookbackDays, 'lookbackDays', 30, false);
      const horizonDays = days(input.horizonDays, 'horizonDays', 90, true);
      const stepSeconds = input.stepSeconds ?? 3600;
      const endSeconds = input.end === undefined ? Date.now() / 1000 : Number(toSeconds(input.end, 'end'));
      const startSeconds = endSeconds - lookbackDays * 86_400;
      const series = await fetchRangeSeries(query, startSeconds, endSeconds, stepSeconds);
      const window = `${new Date(startSeconds * 1000).toISOString()} .. ${new Date(endSeconds * 1000).toISOString()}`;
      if (series.length === 0) return { query, available: false, reason: `Prometheus has no data for this query in ${window}` };
      const points = sumPerTimestamp(series);
      // A trend needs two points; one would be reported as "no growth" with nothing behind it.
      if (points.length < 2) {
        return { query, available: false, reason: `${points.length === 0 ? 'no finite value' : 'only one finite point'} in ${window} (${series.length} series): a trend needs at least two` };
      }
      const trend = fitLinearTrend(points);
      const first = points[0]!;
      const last = points[points.length - 1]!;
      const forecast = valueDaysAfterLastPoint(trend, horizonDays);
      return {
        query,
        available: true,
        seriesCount: series.length,
        points: points.length,
        from: new Date(first.timeMs).toISOString(),
        to: new Date(last.timeMs).toISOString(),
        first: first.value,
        last: last.value,
        slopePerDay: trend.slopePerDay,
        horizonDays,
        forecastTime: new Date(last.timeMs + horizonDays * msPerDay).toISOString(),
        forecast,
        growthPercent: last.value === 0 ? null : ((forecast - last.value) / Math.abs(last.value)) * 100,
        r2: trend.r2,
        daysOfData: (last.timeMs - first.timeMs) / msPerDay,
      };
    },

    /** One of the manual's named queries; `value` is undefined when Prometheus has no data for it. */
    async manualQuery({ name, window = '5m' }: { name: ManualQueryName; window?: string }): Promise<{ name: ManualQueryName; query: string; value: number | undefined }> {
      const build = manualQueries[name];
      if (!build) throw invalidInput(`unknown query "${String(name)}"; expected one of ${Object.keys(manualQueries).join(', ')}`);
      if (!/^\d+[smhd]$/.test(window)) throw invalidInput(`window must be a duration such as 5m, got "${window}"`);
      const query = build(window);
      const result = await instantQuery({ query });
      const value = result.samples[0]?.value;
      return { name, query, value: value === undefined || Number.isNaN(value) ? undefined : value };
    },

    async preflightPrometheus(): Promise<PreflightRow[]> {
      if (!prometheusUrl) return notConfigured('prometheus');
      return runChecks('prometheus', [
        [
          'build info',
          async () => {
            const info = await prometheusGet<{ version: string }>(prometheusUrl, 'api/v1/status/buildinfo', {}, fetchTimeoutMs);
            return { ok: true, detail: `Prometheus ${info.version}` };
          },
        ],
        [
          'query up',
          async () => {
            const data = await prometheusGet<{ result: InstantSample[] }>(prometheusUrl, 'api/v1/query', { query: 'up' }, fetchTimeoutMs);
            const up = data.result.filter((sample) => sample.value[1] === '1').length;
            return { ok: data.result.length > 0, detail: `${data.result.length} targets, ${up} up` };
          },
        ],
      ]);
    },
  };
}
