import { z } from 'zod';
import { zodProblems } from '../common/zod-problems';

/**
 * Alertmanager's webhook body (webhook_config, payload version 4). Only what the bridge reads is
 * checked; other fields Alertmanager adds (groupKey, externalURL, ...) pass through.
 */
const timestamp = z.string().refine((text) => !Number.isNaN(Date.parse(text)), { message: 'expected an RFC 3339 time' });

export const webhookAlert = z.looseObject({
  status: z.enum(['firing', 'resolved'], { message: 'expected "firing" or "resolved"' }),
  labels: z
    .object({ alertname: z.string({ message: 'expected the alertname label' }).min(1, { message: 'expected the alertname label' }) })
    .catchall(z.string({ message: 'expected label values to be strings' })),
  annotations: z.record(z.string(), z.string({ message: 'expected annotation values to be strings' })).default({}),
  startsAt: timestamp,
  endsAt: timestamp.optional(),
  fingerprint: z.string({ message: 'expected the alert fingerprint' }).min(1, { message: 'expected the alert fingerprint' }),
  generatorURL: z.string().optional(),
});

export const webhookPayload = z.looseObject({
  version: z.literal('4', { message: 'expected "4" (Alertmanager webhook payload version 4)' }),
  status: z.enum(['firing', 'resolved'], { message: 'expected "firing" or "resolved"' }),
  receiver: z.string().optional(),
  groupKey: z.string().optional(),
  alerts: z.array(webhookAlert, { message: 'expected a list of alerts' }).min(1, { message: 'expected at least one alert' }),
});

export type WebhookAlert = z.infer<typeof webhookAlert>;
export type WebhookPayload = z.infer<typeof webhookPayload>;

/** The body checked against the schema: the payload, or one line naming every bad field. */
export function parseWebhookPayload(body: unknown): { ok: true; payload: WebhookPayload } | { ok: false; problem: string } {
  const parsed = webhookPayload.safeParse(body);
  if (parsed.success) return { ok: true, payload: parsed.data };
  const problems = zodProblems(parsed.error, 'body');
  return { ok: false, problem: `invalid Alertmanager payload: ${problems.join('; ')}` };
}
