import type { PreflightRow } from '../common/preflight';
import { classified, failure, invalidInput } from './errors';
import { notConfigured, runChecks } from './preflight-checks';

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

/** The manual's PromQL (监控和告警 > 查询示例), by name. */
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

function toSeconds(time: string | undefined, what: string): string | undefined {
  if (time === undefined) return undefined;
  const ms = Date.parse(time);
  if (Number.isNaN(ms)) throw invalidInput(`${what} must be an ISO time, got "${time}"`);
  return String(ms / 1000);
}

export function createPrometheusActivities({ prometheusUrl, fetchTimeoutMs = 5000 }: PrometheusDeps) {
  const requireUrl = (): string => {
    if (!prometheusUrl) throw failure('InvalidInput', 'Prometheus is not configured (PROMETHEUS_URL)');
    return prometheusUrl;
  };

  async function instantQuery({ query, time }: { query: string; time?: string }): Promise<InstantQueryResult> {
    if (!query.trim()) throw invalidInput('query must not be empty');
    const params: Record<string, string> = { query };
    const at = toSeconds(time, 'time');
    if (at) params.time = at;
    const data = await classified(`Prometheus query ${query}`, () => prometheusGet<{ result: InstantSample[] }>(requireUrl(), 'api/v1/query', params, fetchTimeoutMs));
    return {
      query,
      time: new Date(at ? Number(at) * 1000 : Date.now()).toISOString(),
      samples: data.result.slice(0, maxSeries).map((sample) => ({ labels: sample.metric, value: Number(sample.value[1]) })),
      truncated: data.result.length > maxSeries,
    };
  }

  return {
    instantQuery,

    async rangeQuery({ query, start, end, stepSeconds }: { query: string; start: string; end: string; stepSeconds: number }): Promise<RangeQueryResult> {
      if (!query.trim()) throw invalidInput('query must not be empty');
      if (!(stepSeconds > 0)) throw invalidInput(`stepSeconds must be positive, got ${stepSeconds}`);
      const from = toSeconds(start, 'start')!;
      const to = toSeconds(end, 'end')!;
      if (Number(to) <= Number(from)) throw invalidInput('end must be after start');
      if ((Number(to) - Number(from)) / stepSeconds > 11_000) throw invalidInput('too many points: widen stepSeconds (Prometheus allows 11,000 per series)');
      const data = await classified(`Prometheus range query ${query}`, () =>
        prometheusGet<{ result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> }>(
          requireUrl(),
          'api/v1/query_range',
          { query, start: from, end: to, step: String(stepSeconds) },
          fetchTimeoutMs,
        ),
      );
      return {
        query,
        series: data.result.slice(0, maxSeries).map((series) => ({
          labels: series.metric,
          points: series.values.map(([t, v]): [string, number] => [new Date(t * 1000).toISOString(), Number(v)]),
        })),
        truncated: data.result.length > maxSeries,
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
