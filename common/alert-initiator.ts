/**
 * Who starts runs for an alert: `alertmanager:<alertname>`. Shared by the alert bridge (which runs
 * an alert's resolution may signal) and the kernel (which run an alert started, for runs that
 * recorded no firing alerts). Workflow-safe: no I/O.
 */
const prefix = 'alertmanager:';

export function alertInitiator(alertname: string): string {
  return `${prefix}${alertname}`;
}

/** A run started by alerting (any alert), not by a person or a schedule. */
export function isAlertInitiator(startedBy: string | undefined): boolean {
  return typeof startedBy === 'string' && startedBy.startsWith(prefix) && startedBy.length > prefix.length;
}
