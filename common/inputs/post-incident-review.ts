import { z } from 'zod';
import { runbookInputBase } from '../runbook';
import { kubeName } from './fields';

/** Text people write into the report: bounded, and no control characters but newlines and tabs. */
const reportText = (max: number) =>
  z
    .string()
    .trim()
    .min(1, { message: 'leave it out for a generated one, or write something' })
    .max(max, { message: `at most ${max} characters` })
    // eslint-disable-next-line no-control-regex
    .refine((s) => !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(s), { message: 'no control characters (newlines and tabs are fine)' });

/**
 * An incident's id as the incident tracker names it (e.g. INC-2041). It is part of the workflow id,
 * so two reviews of one incident join one run and reviews of different incidents never do.
 */
export const incidentIdField = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { message: 'expected an incident id of letters, digits, ".", "_" and "-" (at most 64), such as INC-2041' });

/**
 * The default id: the UTC start time to the second (20261127-045048). Without an id from the
 * tracker every review is its own run; only a second trigger in the same second joins it.
 * Inside the workflow `new Date()` is the workflow's clock, so this stays deterministic.
 */
export function defaultIncidentId(now: Date = new Date()): string {
  return now.toISOString().slice(0, 19).replace(/-|:/g, '').replace('T', '-');
}

/** 事后分析: collect the evidence of the last hour and write the incident report. */
export const postIncidentReviewInput = z
  .object({
    ...runbookInputBase,
    namespace: kubeName.default('short-drama-prod'),
    /** The app whose pods' logs are collected (every pod its selector matches, every container). */
    appDeployment: kubeName.default('short-drama-app'),
    /** The window: logs and events of the last N minutes before the run started (manual: --since=1h). */
    sinceMinutes: z
      .number({ message: 'expected a number of minutes, such as 60' })
      .int({ message: 'expected whole minutes' })
      .min(1, { message: 'at least 1 minute' })
      .max(7 * 24 * 60, { message: 'at most 10080 minutes (7 days)' })
      .default(60),
    incidentId: incidentIdField.default(() => defaultIncidentId()),
    title: reportText(200).optional(),
    /** The report's parts people write; each left out is generated from what was collected. */
    impact: reportText(8000).optional(),
    rootCause: reportText(8000).optional(),
    solution: reportText(8000).optional(),
    prevention: reportText(8000).optional(),
  })
  .strict();

export type PostIncidentReviewInput = z.input<typeof postIncidentReviewInput>;

/** What the run is about: the namespace and the incident (with the name, the workflow id). */
export function postIncidentReviewTarget(input: Record<string, unknown>): string {
  return `${String(input.namespace)}/incident-${String(input.incidentId)}`;
}
