import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { context, propagation, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { isGrpcServiceError, type Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { catalog as defaultCatalog, type CatalogEntry } from '../common/catalog';
import type { AlertingConfig } from '../config/alerting';
import { alertResolvedSignal } from '../common/messages';
import { errorText } from '../common/failures';
import { HttpError, listenOn, readBody, sameSecret, splitHostPort } from '../config/http-server';
import { runbookTracer } from '../config/tracing';
import { parseWebhookPayload, type WebhookAlert } from './alertmanager-payload';
import { isAlertInitiator } from '../common/alert-initiator';
import { routeAlert, type AlertDecision, type RoutedAlert } from './alert-routing';
import { createRunbookClient } from './runbook-client';
import type { Language } from '../common/texts';
import type { Signer } from './signing';
import type { SlackInteractivity } from './slack-approvals';

/**
 * The bridge from Alertmanager to the runbooks: POST /alertmanager takes a webhook notification,
 * routes each alert by its alertname (config `alerting.routes`), starts or joins the runbook for a
 * firing alert, telling the run which alert (fingerprint) wants it (`alertFiring`, atomically with
 * the start), and sends `alertResolved` with the fingerprint to the alerting-started run a resolved
 * alert maps to: the run stops only when no alert wants it any more.
 *
 * Each alert succeeds or fails on its own; the body lists every alert's outcome. Alertmanager
 * (notify/util.go, Retrier) sends the whole notification again on a 5xx only; 2xx is success and
 * any other status a permanent failure it logs and counts (alertmanager_notifications_failed_total).
 * So the status is: 503 when some alert failed in a way a retry can mend (Temporal unreachable or
 * overloaded, the deadline passed before the alert was handled), which is safe because starts join
 * the run in flight and a second alertFiring or alertResolved of a fingerprint changes nothing;
 * else 422 when every alert failed for good (bad input for its runbook, a start the server
 * refuses), so Alertmanager reports the failure without retrying what cannot succeed; else 207 when
 * some alerts did their part and others failed for good (2xx: the good ones must not be repeated
 * forever); else 200.
 */

export type BridgeLogLevel = 'info' | 'warn' | 'error';
export type BridgeLog = (level: BridgeLogLevel, message: string, fields?: Record<string, unknown>) => void;

/** What happened to one alert of a notification. */
export interface AlertOutcome {
  alertname: string;
  fingerprint: string;
  status: 'firing' | 'resolved';
  outcome: 'started' | 'signalled' | 'skipped' | 'failed';
  /** Why it was skipped or failed. */
  reason?: string;
  /** A failure a retry of the notification may mend (Temporal unreachable, deadline passed). */
  retryable?: boolean;
  workflowId?: string;
}

/** What one notification did, alert by alert. */
export interface NotificationReport {
  status: number;
  /** Every alert of the notification, in its order, with what happened to it. */
  alerts: AlertOutcome[];
  started: Array<{ alertname: string; fingerprint: string; runbook: string; workflowId: string; runId: string }>;
  signalled: Array<{ alertname: string; fingerprint: string; workflowId: string; runId: string }>;
  /** Alerts that changed nothing, and why (no route, no run in flight, someone else's run ...). */
  skipped: Array<{ alertname: string; fingerprint: string; status: string; reason: string }>;
  /** Alerts that could not be handled: bad input for their runbook, refused by Temporal, or not reached in time. */
  failed: Array<{ alertname: string; fingerprint: string; status: string; reason: string; retryable: boolean }>;
  /** The most alerts handled at once (bounded by alerting.concurrency). */
  maxInFlight: number;
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
  /** Instead of alerting.deadlineMs: how long one notification may take; alerts not handled by then fail retryably (503). */
  deadlineMs?: number;
  /** Called with what each notification did (tests, metrics). */
  onNotification?: (report: NotificationReport) => void;
  /** Signs each start as alerting.identity (a service in `approvers`), so its runs have a proven initiator. */
  signer?: Signer;
  /** The language of the runs it starts (config `language`). */
  language?: Language;
  /** Slack's interactivity requests (approval buttons) at POST /slack/interactivity; none: 404 there. */
  slackInteractivity?: SlackInteractivity;
}

export interface AlertBridge {
  server: Server;
  /** http://host:port of the listening server; Alertmanager posts to `${url}/alertmanager`. */
  url: string;
  /** Stops listening and waits for calls still running past their notification's deadline. */
  close(): Promise<void>;
}

const maxBodyBytes = 1024 * 1024;

/** One JSON object per line on stdout, like the worker's logs. */
export const jsonLineLog: BridgeLog = (level, message, fields = {}) => {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: level.toUpperCase(), message, ...fields })}\n`);
};

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
}

function tokenMatches(header: string | undefined, token: string): boolean {
  return sameSecret(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '', token);
}

/** gRPC codes where a retry can help: the server down, overloaded or slow, or a call cut short. */
const transientGrpcCodes = new Set([1 /* CANCELLED */, 4 /* DEADLINE_EXCEEDED */, 8 /* RESOURCE_EXHAUSTED */, 10 /* ABORTED */, 13 /* INTERNAL */, 14 /* UNAVAILABLE */]);

/**
 * Whether a retry of the notification could mend this failure. The server refusing the request
 * (invalid argument, permission denied, unknown namespace ...) will refuse it again; Temporal down
 * or slow, or an error of unknown kind, is worth Alertmanager's retry.
 */
function isTransient(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e)) return transientGrpcCodes.has(e.code);
  }
  // Not an answer of the server (connection refused, a bug, a key file unreadable): Alertmanager's retries are bounded, so retry.
  return true;
}

/** Runs `work` on every item with at most `limit` at once; `inFlight.max` keeps the most that ran together. */
async function eachBounded<T>(items: T[], limit: number, work: (item: T) => Promise<void>, inFlight: { now: number; max: number }): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      inFlight.now += 1;
      inFlight.max = Math.max(inFlight.max, inFlight.now);
      try {
        await work(item);
      } finally {
        inFlight.now -= 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** The promise's value if it settles before the deadline (epoch ms); a rejection before then is thrown. */
async function beforeDeadline<T>(work: Promise<T>, deadline: number): Promise<{ inTime: true; value: T } | { inTime: false }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<{ inTime: false }>((resolveLate) => {
    timer = setTimeout(() => resolveLate({ inTime: false }), Math.max(0, deadline - Date.now()));
  });
  // A rejection after the deadline must not surface as unhandled.
  work.catch(() => undefined);
  try {
    return await Promise.race([work.then((value) => ({ inTime: true as const, value })), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The answer's status from the alerts' outcomes (see the comment at the top). */
export function notificationStatus(alerts: AlertOutcome[]): number {
  const failed = alerts.filter((a) => a.outcome === 'failed');
  if (failed.some((a) => a.retryable)) return 503;
  if (failed.length === 0) return 200;
  return failed.length === alerts.length ? 422 : 207;
}

export async function startAlertBridge(options: AlertBridgeOptions): Promise<AlertBridge> {
  const { client, alerting } = options;
  const log = options.log ?? jsonLineLog;
  const catalog = options.catalog ?? defaultCatalog;
  const runbooks = createRunbookClient({ client, taskQueue: options.taskQueue, catalog, signer: options.signer, language: options.language });
  const deadlineMs = options.deadlineMs ?? alerting.deadlineMs;
  /** Calls the bridge stopped waiting for at a notification's deadline. */
  const lateCalls = new Set<Promise<unknown>>();

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
  async function start(alert: RoutedAlert, report: Pick<NotificationReport, 'started'>): Promise<void> {
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

  /** Signals the run the resolved alert maps to; answers why not when it skips it. */
  async function resolve(alert: RoutedAlert, report: Pick<NotificationReport, 'skipped' | 'signalled'>): Promise<string | undefined> {
    const skip = (reason: string) => {
      report.skipped.push({ alertname: alert.alertname, fingerprint: alert.fingerprint, status: 'resolved', reason });
      log('info', `alert resolved: ${reason}`, { alertname: alert.alertname, fingerprint: alert.fingerprint, workflowId: alert.workflowId });
      return reason;
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
    return undefined;
  }

  /**
   * Firing alerts first (each starts or joins its run and is added to its firing alerts), then
   * resolved ones: a run that a firing alert of this notification wants never sees its last
   * alert go, so it does not stop, and the resolved alert is still forgotten by the run. Within
   * each phase at most alerting.concurrency alerts at once; one failing leaves the others alone.
   */
  async function act(decisions: AlertDecision[], report: NotificationReport, outcomes: Map<AlertDecision, AlertOutcome>): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    const inFlight = { now: 0, max: 0 };
    const handle = async (alert: RoutedAlert) => {
      const outcome = outcomes.get(alert)!;
      const fail = (reason: string, retryable: boolean) => {
        Object.assign(outcome, { outcome: 'failed', reason, retryable });
        report.failed.push({ alertname: alert.alertname, fingerprint: alert.fingerprint, status: alert.status, reason, retryable });
        log(retryable ? 'warn' : 'error', `alert not handled${retryable ? '; Alertmanager will retry' : ''}: ${reason}`, {
          alertname: alert.alertname,
          fingerprint: alert.fingerprint,
          status: alert.status,
          workflowId: alert.workflowId,
        });
      };
      // Not started past the deadline: Alertmanager gets its answer before its own timeout, and retries.
      if (Date.now() >= deadline) return fail("the notification's deadline passed before this alert was handled", true);
      // What this alert adds to the report is kept aside until it is known to have finished in time.
      const own: Pick<NotificationReport, 'started' | 'skipped' | 'signalled'> = { started: [], skipped: [], signalled: [] };
      try {
        const work = client.withDeadline(deadline, async () => (alert.status === 'firing' ? void (await start(alert, own)) : resolve(alert, own)));
        // The gRPC deadline does not bound the client's first connect (its own connect timeout), so
        // the notification's deadline is also kept here: a call still running then is left to finish
        // (a start joins, a second signal changes nothing) and the alert fails retryably.
        const answered = await beforeDeadline(work, deadline);
        if (!answered.inTime) {
          const late = work.catch(() => undefined).finally(() => lateCalls.delete(late));
          lateCalls.add(late);
          return fail(`Temporal unreachable or too slow: no answer within the notification's deadline (${deadlineMs} ms)`, true);
        }
        const skipped = answered.value;
        report.started.push(...own.started);
        report.skipped.push(...own.skipped);
        report.signalled.push(...own.signalled);
        Object.assign(outcome, skipped ? { outcome: 'skipped', reason: skipped } : { outcome: alert.status === 'firing' ? 'started' : 'signalled', workflowId: alert.workflowId });
      } catch (err) {
        const transient = isTransient(err);
        fail(`${transient ? 'Temporal unreachable or too slow' : 'Temporal refused'}: ${errorText(err)}`, transient);
      }
    };
    const routed = decisions.filter((d): d is RoutedAlert => d.kind === 'routed');
    await eachBounded(
      routed.filter((d) => d.status === 'firing'),
      alerting.concurrency,
      handle,
      inFlight,
    );
    await eachBounded(
      routed.filter((d) => d.status === 'resolved'),
      alerting.concurrency,
      handle,
      inFlight,
    );
    report.maxInFlight = inFlight.max;
  }

  /** Every alert is routed and its input checked against its runbook's schema first; a bad one fails alone. */
  function decide(alerts: WebhookAlert[], report: NotificationReport): { decisions: AlertDecision[]; outcomes: Map<AlertDecision, AlertOutcome> } {
    const decisions = alerts.map((alert) => routeAlert(alert, alerting.routes, catalog));
    const outcomes = new Map<AlertDecision, AlertOutcome>();
    decisions.forEach((d, i) => {
      const status = alerts[i]!.status;
      const outcome: AlertOutcome = { alertname: d.alertname, fingerprint: d.fingerprint, status, outcome: 'started' };
      outcomes.set(d, outcome);
      report.alerts.push(outcome);
      if (d.kind === 'unrouted') {
        Object.assign(outcome, { outcome: 'skipped', reason: d.reason });
        report.skipped.push({ alertname: d.alertname, fingerprint: d.fingerprint, status, reason: d.reason });
        // Skipped, not failed: Alertmanager would otherwise report (or retry) an alert nobody routes, forever.
        log('info', `alert ignored: ${d.reason}`, { alertname: d.alertname, fingerprint: d.fingerprint, status });
      } else if (d.kind === 'invalid') {
        Object.assign(outcome, { outcome: 'failed', reason: d.problem, retryable: false });
        report.failed.push({ alertname: d.alertname, fingerprint: d.fingerprint, status, reason: d.problem, retryable: false });
        log('error', `alert not handled: ${d.problem}`, { alertname: d.alertname, fingerprint: d.fingerprint, status });
      }
    });
    return { decisions, outcomes };
  }

  async function handleNotification(req: IncomingMessage): Promise<NotificationReport> {
    const report: NotificationReport = { status: 200, alerts: [], started: [], signalled: [], skipped: [], failed: [], maxInFlight: 0 };
    if (alerting.token !== undefined && !tokenMatches(req.headers.authorization, alerting.token)) throw new HttpError(401, 'missing or wrong bearer token');
    const text = await readBody(req, maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'invalid Alertmanager payload: the body is not JSON');
    }
    const parsed = parseWebhookPayload(body);
    if (!parsed.ok) throw new HttpError(400, parsed.problem);
    const { decisions, outcomes } = decide(parsed.payload.alerts, report);
    await act(decisions, report, outcomes);
    report.status = notificationStatus(report.alerts);
    if (report.status !== 200)
      report.error = `${report.failed.length} of ${report.alerts.length} alerts not handled: ${report.failed.map((f) => `${f.alertname} (${f.fingerprint}): ${f.reason}`).join('; ')}`;
    return report;
  }

  /**
   * The notification as one server span (a no-op without tracing), the parent of the starts'
   * spans and so of the runs they start. Attributes are counts and the status: never headers (the
   * token) or the body.
   */
  function tracedNotification(req: IncomingMessage): Promise<NotificationReport> {
    const parent = propagation.extract(context.active(), req.headers);
    return runbookTracer().startActiveSpan('POST /alertmanager', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/alertmanager' } }, parent, async (span) => {
      try {
        const report = await handleNotification(req);
        span.setAttributes({
          'http.response.status_code': report.status,
          'runbook.alerts': report.alerts.length,
          'runbook.alerts.started': report.started.length,
          'runbook.alerts.failed': report.failed.length,
        });
        if (report.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        return report;
      } catch (err) {
        span.setAttribute('http.response.status_code', err instanceof HttpError ? err.status : 500);
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        throw err;
      } finally {
        span.end();
      }
    });
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://bridge').pathname;
    if (path === '/healthz' && req.method === 'GET') return send(res, 200, { ok: true });
    if (path === '/slack/interactivity' && options.slackInteractivity) {
      if (req.method !== 'POST') return send(res, 405, { error: 'POST only' }, { allow: 'POST' });
      const slack = options.slackInteractivity;
      readBody(req, maxBodyBytes)
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
    tracedNotification(req).then(
      (report) => {
        if (report.error)
          log(report.status >= 500 ? 'warn' : 'error', `notification not fully handled${report.status >= 500 ? '; Alertmanager will retry' : ''}`, {
            status: report.status,
            started: report.started.length,
            signalled: report.signalled.length,
            failed: report.failed.length,
          });
        options.onNotification?.(report);
        send(res, report.status, report.error ? { error: report.error, ...report } : report);
      },
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        const message = err instanceof Error ? err.message : String(err);
        // The request's headers are never logged: they carry the token.
        log('warn', 'notification refused', { status, error: message });
        options.onNotification?.({ status, alerts: [], started: [], signalled: [], skipped: [], failed: [], maxInFlight: 0, error: message });
        if (!res.headersSent) send(res, status, { error: message }, status === 401 ? { 'www-authenticate': 'Bearer' } : {});
      },
    );
  });

  const listen = options.listen ?? alerting.listen;
  const { host } = splitHostPort(listen);
  const { url, close } = await listenOn(server, listen);
  log('info', 'alert bridge listening', { url: `${url}/alertmanager`, routes: alerting.routes.length, token: alerting.token ? 'required' : 'none' });
  if (!alerting.token && !/^(127\.|::1$|localhost$)/.test(host)) {
    log('warn', 'no ALERT_BRIDGE_TOKEN while listening beyond loopback: anyone who reaches this port can start runbooks', { url });
  }
  return {
    server,
    url,
    close: async () => {
      await close();
      // Their gRPC deadline has passed, so they end soon; the caller may then close the connection.
      await Promise.allSettled([...lateCalls]);
    },
  };
}
