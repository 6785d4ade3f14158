import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isGrpcServiceError, type Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { catalog as defaultCatalog, type CatalogEntry } from '../common/catalog';
import type { AlertingConfig } from '../config/alerting';
import { alertResolvedSignal } from '../common/messages';
import { errorText } from '../common/failures';
import { parseWebhookPayload } from './alertmanager-payload';
import { isAlertInitiator } from '../common/alert-initiator';
import { routeAlert, type AlertDecision, type RoutedAlert } from './alert-routing';
import { createRunbookClient } from './runbook-client';
import type { Signer } from './signing';
import type { SlackInteractivity } from './slack-approvals';

/**
 * The bridge from Alertmanager to the runbooks: POST /alertmanager takes a webhook notification,
 * routes each alert by its alertname (config `alerting.routes`), starts or joins the runbook for a
 * firing alert, telling the run which alert (fingerprint) wants it (`alertFiring`, atomically with
 * the start), and sends `alertResolved` with the fingerprint to the alerting-started run a resolved
 * alert maps to: the run stops only when no alert wants it any more. It answers 200 only once
 * Temporal accepted every start and signal; a 5xx makes Alertmanager send the notification again,
 * which is safe: starts join the run in flight, a second alertFiring or alertResolved of the same
 * fingerprint changes nothing.
 */

export type BridgeLogLevel = 'info' | 'warn' | 'error';
export type BridgeLog = (level: BridgeLogLevel, message: string, fields?: Record<string, unknown>) => void;

/** What one notification did, alert by alert. */
export interface NotificationReport {
  status: number;
  started: Array<{ alertname: string; fingerprint: string; runbook: string; workflowId: string; runId: string }>;
  signalled: Array<{ alertname: string; fingerprint: string; workflowId: string; runId: string }>;
  /** Alerts that changed nothing, and why (no route, no run in flight, someone else's run ...). */
  skipped: Array<{ alertname: string; fingerprint: string; status: string; reason: string }>;
  error?: string;
}

export interface AlertBridgeOptions {
  client: Client;
  taskQueue: string;
  alerting: AlertingConfig;
  /** host:port to listen on instead of alerting.listen (tests: port 0). */
  listen?: string;
  catalog?: Record<string, CatalogEntry>;
  log?: BridgeLog;
  /** Bound on Temporal's answers for one notification; past it the answer is 503 and Alertmanager retries. */
  temporalTimeoutMs?: number;
  /** Called with what each notification did (tests, metrics). */
  onNotification?: (report: NotificationReport) => void;
  /** Signs each start as alerting.identity (a service in `approvers`), so its runs have a proven initiator. */
  signer?: Signer;
  /** Slack's interactivity requests (approval buttons) at POST /slack/interactivity; none: 404 there. */
  slackInteractivity?: SlackInteractivity;
}

export interface AlertBridge {
  server: Server;
  /** http://host:port of the listening server; Alertmanager posts to `${url}/alertmanager`. */
  url: string;
  close(): Promise<void>;
}

const maxBodyBytes = 1024 * 1024;

/** One JSON object per line on stdout, like the worker's logs. */
export const jsonLineLog: BridgeLog = (level, message, fields = {}) => {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: level.toUpperCase(), message, ...fields })}\n`);
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
}

/** Compared as digests so neither the length nor a prefix of the token leaks through timing. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const presented = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(presented), digest(token));
}

async function readBody(req: IncomingMessage): Promise<string> {
  if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) throw new HttpError(413, `body larger than ${maxBodyBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new HttpError(413, `body larger than ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function splitListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  return { host: listen.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(listen.slice(at + 1)) };
}

/** Temporal down, or not answering in time: worth a retry, so 503. */
function isUnreachable(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e) && [4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */].includes(e.code)) return true;
    if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|Failed to connect/.test(String((e as Error).message))) return true;
  }
  return false;
}

export async function startAlertBridge(options: AlertBridgeOptions): Promise<AlertBridge> {
  const { client, alerting } = options;
  const log = options.log ?? jsonLineLog;
  const catalog = options.catalog ?? defaultCatalog;
  const runbooks = createRunbookClient({ client, taskQueue: options.taskQueue, catalog, signer: options.signer });
  const timeoutMs = options.temporalTimeoutMs ?? 10_000;

  /** Who started a run, from its first history event (works whether or not a worker is up). */
  async function initiatorOf(workflowId: string, runId: string): Promise<string | undefined> {
    const { history } = await client.workflowService.getWorkflowExecutionHistory({ namespace: client.options.namespace, execution: { workflowId, runId }, maximumPageSize: 1 });
    const started = history?.events?.[0]?.workflowExecutionStartedEventAttributes;
    // Decoded as any client decodes payloads: its codecs in reverse, then its payload converter.
    const { payloadCodecs, payloadConverter } = client.options.loadedDataConverter;
    let payloads = started?.input?.payloads ?? [];
    for (const codec of [...payloadCodecs].reverse()) payloads = await codec.decode(payloads);
    const input = payloads[0] ? payloadConverter.fromPayload(payloads[0]) : undefined;
    const startedBy = (input as { startedBy?: unknown } | undefined)?.startedBy;
    return typeof startedBy === 'string' ? startedBy : undefined;
  }

  /** Starts the alert's run or joins the one in flight, adding the alert to the run's firing alerts in the same call. */
  async function start(alert: RoutedAlert, report: NotificationReport): Promise<void> {
    const { workflowId, runId } = await runbooks.startRunbook(alert.runbook, alert.input, {
      startedBy: alert.startedBy,
      signedBy: alerting.identity,
      alert: { alert: alert.alertname, fingerprint: alert.fingerprint },
    });
    report.started.push({ alertname: alert.alertname, fingerprint: alert.fingerprint, runbook: alert.runbook, workflowId, runId });
    log('info', 'alert firing: runbook started or joined, alertFiring sent', {
      alertname: alert.alertname,
      fingerprint: alert.fingerprint,
      runbook: alert.runbook,
      workflowId,
      runId,
      severity: alert.input.severity,
      mode: alert.input.mode,
    });
  }

  async function resolve(alert: RoutedAlert, report: NotificationReport): Promise<void> {
    const skip = (reason: string) => {
      report.skipped.push({ alertname: alert.alertname, fingerprint: alert.fingerprint, status: 'resolved', reason });
      log('info', `alert resolved: ${reason}`, { alertname: alert.alertname, fingerprint: alert.fingerprint, workflowId: alert.workflowId });
    };
    let runId: string;
    try {
      const description = await client.workflow.getHandle(alert.workflowId).describe();
      if (description.status.name !== 'RUNNING') return skip(`run ${alert.workflowId} already ${description.status.name.toLowerCase()}`);
      runId = description.runId;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return skip(`no run ${alert.workflowId}`);
      throw err;
    }
    // Only a run alerting started (by any alert: the run knows which alerts still want it and
    // decides whether to stop); a run a person started stays theirs.
    const startedBy = await initiatorOf(alert.workflowId, runId);
    if (!isAlertInitiator(startedBy)) return skip(`run ${alert.workflowId} was started by ${startedBy ?? 'unknown'}, not by an alert`);
    // By run id, so a run started after this check is never the one signalled.
    await client.workflow.getHandle(alert.workflowId, runId).signal(alertResolvedSignal, { alert: alert.alertname, fingerprint: alert.fingerprint });
    report.signalled.push({ alertname: alert.alertname, fingerprint: alert.fingerprint, workflowId: alert.workflowId, runId });
    log('info', 'alert resolved: alertResolved sent to the run', { alertname: alert.alertname, fingerprint: alert.fingerprint, workflowId: alert.workflowId, runId });
  }

  /**
   * Firing alerts first (each starts or joins its run and is added to its firing alerts), then
   * resolved ones: a run that a firing alert of this notification wants never sees its last
   * alert go, so it does not stop, and the resolved alert is still forgotten by the run.
   */
  async function act(decisions: AlertDecision[], report: NotificationReport): Promise<void> {
    const routed = decisions.filter((d): d is RoutedAlert => d.kind === 'routed');
    for (const alert of routed.filter((d) => d.status === 'firing')) await start(alert, report);
    for (const alert of routed.filter((d) => d.status === 'resolved')) await resolve(alert, report);
  }

  async function handleNotification(req: IncomingMessage): Promise<NotificationReport> {
    const report: NotificationReport = { status: 200, started: [], signalled: [], skipped: [] };
    if (alerting.token !== undefined && !tokenMatches(req.headers.authorization, alerting.token)) throw new HttpError(401, 'missing or wrong bearer token');
    const text = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'invalid Alertmanager payload: the body is not JSON');
    }
    const parsed = parseWebhookPayload(body);
    if (!parsed.ok) throw new HttpError(400, parsed.problem);
    // Every alert is routed and its input validated before anything starts: a bad one changes nothing.
    const decisions = parsed.payload.alerts.map((alert) => routeAlert(alert, alerting.routes, catalog));
    const invalid = decisions.flatMap((d) => (d.kind === 'invalid' ? [d.problem] : []));
    if (invalid.length > 0) throw new HttpError(400, `invalid alert: ${invalid.join('; ')}`);
    for (const d of decisions) {
      if (d.kind !== 'unrouted') continue;
      report.skipped.push({ alertname: d.alertname, fingerprint: d.fingerprint, status: d.status, reason: d.reason });
      // 200 all the same: Alertmanager would otherwise retry an alert nobody routes, forever.
      log('info', `alert ignored: ${d.reason}`, { alertname: d.alertname, fingerprint: d.fingerprint, status: d.status });
    }
    try {
      await client.withDeadline(Date.now() + timeoutMs, () => act(decisions, report));
    } catch (err) {
      const unreachable = isUnreachable(err);
      report.status = unreachable ? 503 : 500;
      report.error = `${unreachable ? 'Temporal unreachable' : 'Temporal refused'}: ${errorText(err)}`;
    }
    return report;
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://bridge').pathname;
    if (path === '/healthz' && req.method === 'GET') return send(res, 200, { ok: true });
    if (path === '/slack/interactivity' && options.slackInteractivity) {
      if (req.method !== 'POST') return send(res, 405, { error: 'POST only' }, { allow: 'POST' });
      const slack = options.slackInteractivity;
      readBody(req)
        .then((body) => slack(req.headers, body))
        .then(
          (answer) => (answer.body === undefined ? (res.writeHead(answer.status), res.end()) : send(res, answer.status, answer.body)),
          (err: unknown) => {
            log('error', 'Slack request failed', { error: errorText(err) });
            if (!res.headersSent) send(res, 500, { error: 'could not handle the Slack request' });
          },
        );
      return;
    }
    if (path !== '/alertmanager') return send(res, 404, { error: 'not found; Alertmanager posts to /alertmanager' });
    if (req.method !== 'POST') return send(res, 405, { error: 'POST only' }, { allow: 'POST' });
    handleNotification(req).then(
      (report) => {
        if (report.error)
          log('error', 'notification not fully handled; Alertmanager will retry', { status: report.status, error: report.error, started: report.started.length, signalled: report.signalled.length });
        options.onNotification?.(report);
        send(res, report.status, report.error ? { error: report.error, ...report } : report);
      },
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        const message = err instanceof Error ? err.message : String(err);
        // The request's headers are never logged: they carry the token.
        log('warn', 'notification refused', { status, error: message });
        options.onNotification?.({ status, started: [], signalled: [], skipped: [], error: message });
        if (!res.headersSent) send(res, status, { error: message }, status === 401 ? { 'www-authenticate': 'Bearer' } : {});
      },
    );
  });

  const { host, port } = splitListen(options.listen ?? alerting.listen);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  log('info', 'alert bridge listening', { url: `${url}/alertmanager`, routes: alerting.routes.length, token: alerting.token ? 'required' : 'none' });
  if (!alerting.token && !/^(127\.|::1$|localhost$)/.test(host)) {
    log('warn', 'no ALERT_BRIDGE_TOKEN while listening beyond loopback: anyone who reaches this port can start runbooks', { url });
  }
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
