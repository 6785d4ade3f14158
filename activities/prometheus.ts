import type { PreflightRow } from '../common/preflight';
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
  if (!body) throw new Error(`Prometheus ${path}: HTTP ${response.status} without a JSON body`);
  if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.errorType ?? 'error'}: ${body.error ?? `HTTP ${response.status}`}`);
  return body.data;
}

export function createPrometheusActivities({ prometheusUrl, fetchTimeoutMs = 5000 }: PrometheusDeps) {
  return {
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
