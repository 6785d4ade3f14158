import { createHash } from 'node:crypto';
import type { NotificationReport } from '../../client/alert-bridge';

export interface TestAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
}

/** The fingerprint Alertmanager would give: one per label set, so firing and resolved match. */
export function fingerprintOf(labels: Record<string, string>): string {
  const text = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** A webhook body as Alertmanager 0.25 sends it (payload version 4). */
export function alertNotification(alerts: TestAlert[]): Record<string, unknown> {
  const startsAt = new Date(Date.now() - 60_000).toISOString();
  const first = alerts[0]!.labels;
  return {
    version: '4',
    groupKey: `{}:{alertname="${first.alertname}"}`,
    truncatedAlerts: 0,
    status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    receiver: 'runbook-bridge',
    groupLabels: { alertname: first.alertname },
    commonLabels: first,
    commonAnnotations: {},
    externalURL: 'http://127.0.0.1:9093',
    alerts: alerts.map((alert) => ({
      status: alert.status,
      labels: alert.labels,
      annotations: { summary: `${alert.labels.alertname} in a test` },
      startsAt,
      endsAt: alert.status === 'resolved' ? new Date().toISOString() : '0001-01-01T00:00:00Z',
      generatorURL: 'http://127.0.0.1:9090/graph',
      fingerprint: fingerprintOf(alert.labels),
    })),
  };
}

export interface BridgeAnswer {
  status: number;
  body: NotificationReport & { error?: string };
  headers: Headers;
}

/** POST /alertmanager as Alertmanager does (a string body is sent as is). */
export async function postToBridge(bridgeUrl: string, body: unknown, token?: string): Promise<BridgeAnswer> {
  const response = await fetch(`${bridgeUrl}/alertmanager`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  return { status: response.status, body: (await response.json()) as BridgeAnswer['body'], headers: response.headers };
}
