import { alertInitiator } from '../common/alert-initiator';
import { workflowIdFor, type CatalogEntry } from '../common/catalog';
import { defaultInputFromLabels, type AlertRoute } from '../config/alerting';
import type { WebhookAlert } from './alertmanager-payload';
import { zodProblems } from '../common/zod-problems';

/** An alert with a route: the runbook, its input and the workflow id the catalog gives it. */
export interface RoutedAlert {
  kind: 'routed';
  alertname: string;
  status: WebhookAlert['status'];
  fingerprint: string;
  runbook: string;
  /** The runbook's input without startedBy (startRunbook adds it). */
  input: Record<string, unknown>;
  /** The workflow's argument: the input with startedBy, as the runbook's schema parsed it (defaults filled in). */
  args: Record<string, unknown>;
  startedBy: string;
  /** The run a firing alert starts or joins, and the one its resolution signals. */
  workflowId: string;
}

export interface UnroutedAlert {
  kind: 'unrouted';
  alertname: string;
  status: WebhookAlert['status'];
  fingerprint: string;
  reason: string;
}

export interface InvalidAlert {
  kind: 'invalid';
  alertname: string;
  fingerprint: string;
  problem: string;
}

export type AlertDecision = RoutedAlert | UnroutedAlert | InvalidAlert;

/** Who starts runs for an alert (`alertmanager:<alertname>`): how the bridge knows a run is alerting's, not a person's. */

function matches(route: AlertRoute, labels: Record<string, string>): boolean {
  return route.alertname === labels.alertname && Object.entries(route.match).every(([label, value]) => labels[label] === value);
}

/**
 * The first route whose alertname and `match` labels fit decides the runbook. Its input is, from
 * lowest to highest precedence: the runbook's defaults, the alert's labels (inputFromLabels), the
 * route's fixed input (configuration names it on purpose), the route's mode and severity.
 * Validated here with the runbook's own schema, so a bad label is refused before anything starts.
 */
export function routeAlert(alert: WebhookAlert, routes: AlertRoute[], catalog: Record<string, CatalogEntry>): AlertDecision {
  const { alertname } = alert.labels;
  const base = { alertname, fingerprint: alert.fingerprint };
  const route = routes.find((r) => matches(r, alert.labels));
  if (!route) {
    const sameName = routes.some((r) => r.alertname === alertname);
    return { kind: 'unrouted', ...base, status: alert.status, reason: sameName ? `no route for ${alertname} matches its labels` : `no route for alert ${alertname}` };
  }
  const entry = catalog[route.runbook];
  if (!entry) return { kind: 'invalid', ...base, problem: `alert ${alertname}: the route names runbook ${route.runbook}, which is not in the catalog` };
  const input: Record<string, unknown> = {};
  for (const [field, label] of Object.entries(route.inputFromLabels ?? defaultInputFromLabels(entry))) {
    const value = alert.labels[label];
    if (value) input[field] = value;
  }
  Object.assign(input, route.input, { mode: route.mode, severity: route.severity });
  const startedBy = alertInitiator(alertname);
  const parsed = entry.inputSchema.safeParse({ ...input, startedBy });
  if (!parsed.success) {
    const problems = zodProblems(parsed.error);
    return { kind: 'invalid', ...base, problem: `alert ${alertname} (fingerprint ${alert.fingerprint}) gives ${entry.name} a bad input: ${problems.join('; ')}` };
  }
  const args = parsed.data as Record<string, unknown>;
  return { kind: 'routed', ...base, status: alert.status, runbook: entry.name, input, args, startedBy, workflowId: workflowIdFor(entry, args) };
}
