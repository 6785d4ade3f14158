import { createHash, randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { createRunbookClient } from '../client/runbook-client';
import { keyFileSigner } from '../client/signing';
import { loadConfig } from '../config/load';
import { connectClient } from '../config/temporal-connection';
import { readTestbedEnv } from '../scripts/testbed';
import { eachLimited, machineLine, ms, percentile, startScript, terminateOpenRuns, type ScriptProcess } from './bench-support';

/**
 * Issue 19 (1), `npm run bench -- alert`: alert to first diagnosis through the real alert bridge
 * (scripts/alert-bridge.ts, its own process, HTTP with Alertmanager's version-4 payload) and a real
 * worker (workers/main.ts, its own process), on a task queue of the bench's own. At 1, 10 and 100
 * alerts/s for 30 s, each alert (`ServiceUnavailable` -> podCrashLoop, the default route) on its
 * own Deployment name in the sandbox's app namespace, posted twice at once as both members of an
 * Alertmanager HA pair do: the latency from the first POST to the run's first ActivityTaskStarted
 * event (its time in the server's history), and how many runs started per target (one each).
 * Baseline in the same run: the same start from the client API directly (no HTTP, no bridge).
 * The Deployments do not exist (thousands would not fit the sandbox): the diagnosis reads the
 * namespace and finds none, so the runs end soon after their first activity.
 */
const phaseSeconds = Number(process.env.BENCH_ALERT_SECONDS ?? 30);
const rates = (process.env.BENCH_ALERT_RATES ?? '1,10,100').split(',').map(Number);
const namespace = 'short-drama-prod';
const goal = { rate: 100, p50Ms: 200, p99Ms: 1000 };
/** How long the runs of a phase may take to reach their first activity after its last POST. */
const drainMs = 120_000;

interface Sent {
  deployment: string;
  workflowId: string;
  postedAt: number;
  statuses: number[];
}

/** The fingerprint Alertmanager gives an alert: one per label set. */
function fingerprintOf(labels: Record<string, string>): string {
  const text = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** One firing alert in a notification as Alertmanager 0.25 sends it (webhook payload version 4). */
function notification(labels: Record<string, string>): string {
  return JSON.stringify({
    version: '4',
    groupKey: `{}:{alertname="${labels.alertname}", deployment="${labels.deployment}"}`,
    truncatedAlerts: 0,
    status: 'firing',
    receiver: 'runbooks',
    groupLabels: { alertname: labels.alertname, deployment: labels.deployment },
    commonLabels: labels,
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    alerts: [
      {
        status: 'firing',
        labels,
        annotations: { summary: 'no target of job short-drama-app up' },
        startsAt: new Date().toISOString(),
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://prometheus:9090/graph',
        fingerprint: fingerprintOf(labels),
      },
    ],
  });
}

/** The time of the run's first ActivityTaskStarted event and its activity, from the server's history; undefined when it has none. */
async function firstActivity(client: Client, workflowId: string): Promise<{ at: number; activity: string } | undefined> {
  const scheduled = new Map<string, string>();
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.workflowService.getWorkflowExecutionHistory({ namespace: client.options.namespace, execution: { workflowId }, nextPageToken, maximumPageSize: 100 });
    for (const event of page.history?.events ?? []) {
      if (event.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        scheduled.set(String(event.eventId), event.activityTaskScheduledEventAttributes?.activityType?.name ?? '?');
      if (event.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
        const time = event.eventTime!;
        return { at: Number(time.seconds) * 1000 + Math.floor((time.nanos ?? 0) / 1e6), activity: scheduled.get(String(event.activityTaskStartedEventAttributes?.scheduledEventId)) ?? '?' };
      }
    }
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return undefined;
}

/** Waits until no run of the task queue is open or the deadline passes. */
async function drained(client: Client, taskQueue: string, deadline: number): Promise<number> {
  for (;;) {
    const { count } = await client.workflow.count(`TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'`);
    if (count === 0 || Date.now() > deadline) return count;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Latencies and run counts of the sent alerts, read back from the server. */
async function measure(client: Client, taskQueue: string, prefix: string, sent: Sent[]) {
  const latencies: number[] = [];
  const activities = new Map<string, number>();
  let missing = 0;
  await eachLimited(sent, 10, async (s) => {
    const first = await firstActivity(client, s.workflowId).catch(() => undefined);
    if (!first) return void missing++;
    latencies.push(first.at - s.postedAt);
    activities.set(first.activity, (activities.get(first.activity) ?? 0) + 1);
  });
  const runsPerTarget = new Map<string, number>();
  for await (const run of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND WorkflowType = 'podCrashLoop'` })) {
    if (run.workflowId.startsWith(prefix)) runsPerTarget.set(run.workflowId, (runsPerTarget.get(run.workflowId) ?? 0) + 1);
  }
  const runs = [...runsPerTarget.values()].reduce((a, b) => a + b, 0);
  const duplicated = [...runsPerTarget.values()].filter((n) => n > 1).length;
  return { latencies, missing, runs, targets: runsPerTarget.size, duplicated, activities };
}

function latencyLine(latencies: number[]): string {
  return `p50 ${ms(percentile(latencies, 0.5))}, p99 ${ms(percentile(latencies, 0.99))}, max ${ms(Math.max(...latencies))}`;
}

export default async function alertLatencyBench(): Promise<void> {
  const env = readTestbedEnv();
  if (!env.TEMPORAL_ADDRESS || !env.ALERT_BRIDGE_TOKEN) throw new Error('no test bed: run `npm run testbed -- up` first');
  const id = randomUUID().slice(0, 8);
  const taskQueue = `bench-alerts-${id}`;
  const processEnv = { ...process.env, ...env, TEMPORAL_TASK_QUEUE: taskQueue, WORKER_METRICS_PORT: '0' };
  const config = loadConfig({ env: processEnv });
  const { client, close } = await connectClient(config.temporal);
  let worker: ScriptProcess | undefined;
  let bridge: ScriptProcess | undefined;
  try {
    console.log(`machine: ${machineLine()}`);
    console.log(`latency: from the first POST /alertmanager to the run's first ActivityTaskStarted event (its time in the Temporal server's history; one clock: all on this machine)`);
    worker = startScript('workers/main.ts', processEnv);
    await worker.waitForLine((line) => line.includes('"worker ready"'));
    bridge = startScript('scripts/alert-bridge.ts', { ...processEnv, ALERT_BRIDGE_LISTEN: '127.0.0.1:0' });
    const listening = JSON.parse(await bridge.waitForLine((line) => line.includes('alert bridge listening'))) as { url: string };
    /** Why POSTs got no answer (status 0), e.g. the 60 s timeout or a refused connection. */
    const unanswered = new Map<string, number>();
    const post = (body: string) =>
      fetch(listening.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${env.ALERT_BRIDGE_TOKEN}` }, body, signal: AbortSignal.timeout(60_000) }).then(
        async (response) => (await response.arrayBuffer(), response.status),
        (err: unknown) => {
          const e = err as { name?: string; cause?: { code?: string } };
          const reason = e.cause?.code ?? e.name ?? String(err);
          unanswered.set(reason, (unanswered.get(reason) ?? 0) + 1);
          return 0;
        },
      );

    // Baseline: the same signal-with-start from the client API, 1 a second for 10 s, signed as the bridge signs.
    const runbooks = createRunbookClient({ client, taskQueue, signer: keyFileSigner(env.ALERT_BRIDGE_SIGNING_KEY!) });
    const baselinePrefix = `podCrashLoop/${namespace}/bench-${id}-direct-`;
    const baseline: Sent[] = [];
    for (let i = 0; i < 10; i++) {
      const deployment = `bench-${id}-direct-${i}`;
      const postedAt = Date.now();
      const started = await runbooks.startRunbook(
        'podCrashLoop',
        { namespace, deployment, severity: 'P0', mode: 'plan' },
        { startedBy: 'alertmanager:ServiceUnavailable', signedBy: 'alert-bridge', alert: { alert: 'ServiceUnavailable', fingerprint: deployment } },
      );
      baseline.push({ deployment, workflowId: started.workflowId, postedAt, statuses: [] });
      await new Promise((r) => setTimeout(r, Math.max(0, postedAt + 1000 - Date.now())));
    }
    await drained(client, taskQueue, Date.now() + drainMs);
    const direct = await measure(client, taskQueue, baselinePrefix, baseline);
    console.log(`baseline [client API signal-with-start, no bridge, 1/s for 10 s]: ${latencyLine(direct.latencies)}; first activity: ${[...direct.activities.keys()].join(', ')}`);

    const results: string[] = [];
    for (const rate of rates) {
      const phase = `bench-${id}-r${rate}-`;
      const prefix = `podCrashLoop/${namespace}/${phase}`;
      const total = Math.round(rate * phaseSeconds);
      const sent: Sent[] = [];
      const posts: Array<Promise<void>> = [];
      const t0 = Date.now();
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / rate;
        const delay = due - Date.now();
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        const labels = { alertname: 'ServiceUnavailable', namespace, deployment: `${phase}${i}`, job: 'short-drama-app', severity: 'P0' };
        const body = notification(labels);
        const s: Sent = { deployment: labels.deployment, workflowId: `${prefix}${i}`, postedAt: Date.now(), statuses: [] };
        sent.push(s);
        // The same alert from both members of an HA pair, at once.
        posts.push(Promise.all([post(body), post(body)]).then((statuses) => void (s.statuses = statuses)));
      }
      const sendingMs = Date.now() - t0;
      await Promise.all(posts);
      const answeredMs = Date.now() - t0;
      const open = await drained(client, taskQueue, Date.now() + drainMs);
      const m = await measure(client, taskQueue, prefix, sent);
      const why = [...unanswered].map(([reason, n]) => `${reason} x${n}`).join(', ');
      unanswered.clear();
      const statusCounts = new Map<number, number>();
      for (const status of sent.flatMap((s) => s.statuses)) statusCounts.set(status, (statusCounts.get(status) ?? 0) + 1);
      const atGoal =
        rate === goal.rate
          ? ` (goal p50 <= ${goal.p50Ms} ms: ${percentile(m.latencies, 0.5) <= goal.p50Ms ? 'met' : 'NOT met'}; p99 <= ${goal.p99Ms} ms: ${percentile(m.latencies, 0.99) <= goal.p99Ms ? 'met' : 'NOT met'})`
          : '';
      const line = `${rate} alerts/s: ${total} alerts (x2 POSTs) in ${(sendingMs / 1000).toFixed(1)} s, all answered after ${(answeredMs / 1000).toFixed(1)} s (HTTP ${[...statusCounts].map(([s, n]) => `${s} x${n}`).join(', ')}${why ? `; no answer: ${why}` : ''}); first activity ${latencyLine(m.latencies)}${atGoal}; ${m.missing} without a first activity${open ? ` (${open} runs still open ${drainMs / 1000} s later)` : ''}; runs started ${m.runs} on ${m.targets} targets, ${m.duplicated} targets with more than one (goal: exactly one per target: ${m.runs === total && m.targets === total ? 'met' : 'NOT met'})`;
      console.log(line);
      results.push(line);
      await terminateOpenRuns(client, taskQueue, 'bench: phase over');
    }
    console.log(`worker RSS at the end: ${(worker.rssBytes() / 2 ** 20).toFixed(0)} MiB; load average after: ${machineLine()}`);
  } finally {
    const terminated = await terminateOpenRuns(client, taskQueue, 'bench cleanup').catch(() => 0);
    if (terminated) console.log(`cleanup: terminated ${terminated} open runs`);
    await bridge?.stop();
    await worker?.stop();
    await close();
  }
}
