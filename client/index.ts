/** The client API: import this from other services to start and steer runbooks. */
export { createRunbookClient, RunbookClientError } from './runbook-client';
export type { DecisionRequest, ListFilter, RunbookClient, RunbookClientOptions, RunSummary, StartedRun, StartOptions } from './runbook-client';
export { catalog } from '../common/catalog';
export { startAlertBridge } from './alert-bridge';
export type { AlertBridge, AlertBridgeOptions, NotificationReport } from './alert-bridge';
export type * from '../common/runbook';
export type { PreflightInput } from '../common/preflight-input';
export type { PreflightResult, PreflightRow } from '../common/preflight';
