import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { createRunbookClient, type RunbookClient } from '../client/runbook-client';
import { keyFileSigner, keyringSigner } from '../client/signing';
import { loadConfig } from '../config/load';
import { sandboxApproverKeyDir } from '../config/sandbox';
import { connectClient } from '../config/temporal-connection';
import { workerTargetBinding } from '../scripts/deploy-manifests';
import { readTestbedEnv } from '../scripts/testbed';
import { kubeConfigFromFile } from '../scripts/testbed/kubernetes-apply';
import { testbedLayout } from '../scripts/testbed/layout';
import { eachLimited, machineLine, ms, percentile, startScript, terminateOpenRuns, type ScriptProcess } from './bench-support';

/**
 * Issue 19 (2), `npm run bench -- waiting`: 1,000 runs of applyNetworkPolicy in execute mode, each
 * on its own NetworkPolicy name in a scratch namespace (the plan is a dry run against the API
 * server; the change one server-side apply), all waiting for approval on one real worker process
 * (workers/main.ts): the worker's RSS, status-query p50/p99 while they wait, then every run approved
 * through the client API (signed, as bob, l2; alice started them) and the time from the last
 * approval until all have completed. Then the same with two workers. Baseline in the same run: one
 * run alone on the same worker (its queries and its time to complete after approval).
 * Bounded: each wait gives up after `waitMs`; every run still open is terminated and the scratch
 * namespace (with the policies the runs created) deleted at the end, also on failure.
 */
const runs = Number(process.env.BENCH_WAITING_RUNS ?? 1000);
/** How long the runs may take to reach their approval, and to complete after it (the goal is 120 s). */
const waitMs = 150_000;
const goal = { rssBytes: 2 ** 30, queryP99Ms: 100, completeMs: 120_000 };
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

interface Waiting {
  workflowId: string;
  runId: string;
  stepId: string;
  planHash: string;
}

/** How many of the task queue's applyNetworkPolicy runs match the clause. */
async function countRuns(client: Client, taskQueue: string, clause: string): Promise<number> {
  return Number((await client.workflow.count(`TaskQueue = '${taskQueue}' AND WorkflowType = 'applyNetworkPolicy' AND ${clause}`)).count);
}

/** Polls until `done` or the deadline; returns whether it was reached. */
async function waitFor(done: () => Promise<boolean>, timeoutMs: number, onTick?: () => void): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    onTick?.();
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Each run's status, queried once (at most 10 at once): the latencies, what each waits for, and the queries that failed (by reason). */
async function queryAll(runbooks: RunbookClient, workflowIds: string[], assertAlive: () => void) {
  const latencies: number[] = [];
  const waiting: Waiting[] = [];
  const failed = new Map<string, number>();
  await eachLimited(workflowIds, 10, async (workflowId) => {
    assertAlive(); // a query no worker answers waits for its timeout
    const start = performance.now();
    try {
      const status = await runbooks.getStatus(workflowId);
      latencies.push(performance.now() - start);
      if (status.pending) waiting.push({ workflowId, runId: status.runId!, stepId: status.pending.stepId, planHash: status.pending.planHash });
    } catch (err) {
      // E.g. a workflow task that timed out on a starved worker: the server refuses queries until its retry completes.
      const reason = ((err as { cause?: { details?: string } }).cause?.details ?? String(err)).slice(0, 120);
      failed.set(reason, (failed.get(reason) ?? 0) + 1);
    }
  });
  return { latencies, waiting, failed };
}

const failures = (failed: Map<string, number>) => (failed.size ? `; ${[...failed].map(([reason, n]) => `${n} failed: ${reason}`).join('; ')}` : '');

/** Approves every waiting run (signed as bob); the time of the last approval's answer. */
async function approveAll(runbooks: RunbookClient, waiting: Waiting[]): Promise<{ lastApprovalAt: number; failed: number }> {
  let failed = 0;
  await eachLimited(waiting, 20, async (w) => {
    await runbooks.approve(w.workflowId, { stepId: w.stepId, planHash: w.planHash, approver: 'bob', reason: 'bench: approve all' }, { runId: w.runId }).catch(() => failed++);
  });
  return { lastApprovalAt: Date.now(), failed };
}

/** The latest close time of the task queue's applyNetworkPolicy runs. */
async function lastCloseTime(client: Client, taskQueue: string): Promise<{ last: number; completed: number }> {
  let last = 0;
  let completed = 0;
  for await (const run of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND WorkflowType = 'applyNetworkPolicy' AND ExecutionStatus = 'Completed'` })) {
    completed++;
    last = Math.max(last, run.closeTime?.getTime() ?? 0);
  }
  return { last, completed };
}

async function half(client: Client, baseEnv: NodeJS.ProcessEnv, namespace: string, workerCount: number, id: string): Promise<void> {
  const taskQueue = `bench-waiting-${id}-${workerCount}w`;
  const env = { ...baseEnv, TEMPORAL_TASK_QUEUE: taskQueue };
  const keyDir = sandboxApproverKeyDir(testbedLayout().stateDir);
  const signer = keyringSigner({ alice: keyFileSigner(join(keyDir, 'alice')), bob: keyFileSigner(join(keyDir, 'bob')) });
  const runbooks = createRunbookClient({ client, taskQueue, signer });
  const workers: ScriptProcess[] = [];
  const peak: number[] = [];
  const assertAlive = () => {
    const dead = workers.find((w) => w.child.exitCode !== null || w.child.signalCode !== null);
    if (dead) throw new Error(`a worker exited (${dead.child.exitCode ?? dead.child.signalCode}); its last output:\n${dead.lines.slice(-20).join('\n')}`);
  };
  const sampleRss = () => {
    assertAlive();
    workers.forEach((w, i) => (peak[i] = Math.max(peak[i] ?? 0, w.rssBytes())));
  };
  try {
    for (let i = 0; i < workerCount; i++) workers.push(startScript('workers/main.ts', env));
    await Promise.all(workers.map((w) => w.waitForLine((line) => line.includes('"worker ready"'))));
    const idleRss = workers.map((w) => w.rssBytes());
    const start = (policy: string) => runbooks.startRunbook('applyNetworkPolicy', { namespace, policy, mode: 'execute', severity: 'P3' }, { startedBy: 'alice' });

    // Baseline: one run alone.
    const alone = await start(`bench-${id}-alone-${workerCount}`);
    await waitFor(async () => (await runbooks.getStatus(alone.workflowId)).pending !== undefined, waitMs);
    const aloneQueries = await queryAll(
      runbooks,
      Array.from({ length: 20 }, () => alone.workflowId),
      assertAlive,
    );
    const aloneApproved = await approveAll(runbooks, aloneQueries.waiting.slice(0, 1));
    await runbooks.waitForResult(alone.workflowId);
    const aloneCompleteMs = Date.now() - aloneApproved.lastApprovalAt;
    console.log(
      `[${workerCount} worker${workerCount > 1 ? 's' : ''}] baseline, one run alone: status query p50 ${ms(percentile(aloneQueries.latencies, 0.5))}, p99 ${ms(percentile(aloneQueries.latencies, 0.99))}${failures(aloneQueries.failed)}; completed ${ms(aloneCompleteMs)} after its approval; worker RSS idle ${idleRss.map(mib).join(' + ')}`,
    );

    const t0 = Date.now();
    const started: string[] = [];
    await eachLimited(
      Array.from({ length: runs }, (_, i) => i),
      20,
      async (i) => void started.push((await start(`bench-${id}-${workerCount}w-${i}`)).workflowId),
    );
    const startedMs = Date.now() - t0;
    const allWaiting = await waitFor(async () => (await countRuns(client, taskQueue, `RunbookApprovalState = 'pending'`)) >= runs, waitMs, sampleRss);
    const waitingMs = Date.now() - t0;
    sampleRss();
    const waitingRss = workers.map((w) => w.rssBytes());
    console.log(
      `[${workerCount} worker${workerCount > 1 ? 's' : ''}] ${runs} runs started in ${(startedMs / 1000).toFixed(1)} s; ${await countRuns(client, taskQueue, `RunbookApprovalState = 'pending'`)} waiting for approval (by the server's search attribute) after ${(waitingMs / 1000).toFixed(1)} s${allWaiting ? '' : ` (NOT all within ${waitMs / 1000} s)`}`,
    );
    const queried = await queryAll(runbooks, started, assertAlive);
    sampleRss();
    const p99 = percentile(queried.latencies, 0.99);
    const totalRss = waitingRss.reduce((a, b) => a + b, 0);
    console.log(
      `  worker RSS with them waiting: ${waitingRss.map(mib).join(' + ')} (goal <= 1 GiB per worker: ${waitingRss.every((r) => r <= goal.rssBytes) ? 'met' : 'NOT met'}); status query of each: p50 ${ms(percentile(queried.latencies, 0.5))}, p99 ${ms(p99)} (goal p99 <= ${goal.queryP99Ms} ms: ${p99 <= goal.queryP99Ms ? 'met' : 'NOT met'})${failures(queried.failed)}${workerCount > 1 ? `; together ${mib(totalRss)}` : ''}`,
    );

    const approvalsStart = Date.now();
    const { lastApprovalAt, failed } = await approveAll(runbooks, queried.waiting);
    const allDone = await waitFor(async () => (await countRuns(client, taskQueue, `ExecutionStatus = 'Running'`)) === 0, waitMs, sampleRss);
    const { last, completed } = await lastCloseTime(client, taskQueue);
    const completeMs = last - lastApprovalAt;
    console.log(
      `  approved ${queried.waiting.length - failed} (signed, client API, 20 at once) in ${((lastApprovalAt - approvalsStart) / 1000).toFixed(1)} s${failed ? `, ${failed} approvals refused` : ''}; ${completed - 1} of ${runs} completed${allDone ? '' : ` (NOT all within ${waitMs / 1000} s)`}, the last ${(completeMs / 1000).toFixed(1)} s after the last approval (goal <= 120 s: ${allDone && completeMs <= goal.completeMs ? 'met' : 'NOT met'}); peak RSS ${peak.map(mib).join(' + ')}`,
    );
  } finally {
    const terminated = await terminateOpenRuns(client, taskQueue, 'bench cleanup').catch(() => 0);
    if (terminated) console.log(`  cleanup: terminated ${terminated} open runs`);
    await Promise.all(workers.map((w) => w.stop()));
  }
}

export default async function waitingRunsBench(): Promise<void> {
  const env = readTestbedEnv();
  if (!env.TEMPORAL_ADDRESS || !env.TESTBED_KUBECONFIG_ADMIN) throw new Error('no test bed: run `npm run testbed -- up` first');
  const id = randomUUID().slice(0, 8);
  const namespace = `bench-waiting-${id}`;
  const baseEnv = { ...process.env, ...env, ALLOWED_NAMESPACES: namespace, WORKER_METRICS_PORT: '0' };
  const { client, close } = await connectClient(loadConfig({ env: baseEnv }).temporal);
  const admin = kubeConfigFromFile(env.TESTBED_KUBECONFIG_ADMIN);
  const core = admin.makeApiClient(CoreV1Api);
  try {
    console.log(`machine: ${machineLine()}; ${runs} runs of applyNetworkPolicy (execute, P3) in namespace ${namespace}`);
    await core.createNamespace({ metadata: { name: namespace, labels: { 'runbook-testbed/scratch': 'true' } } });
    // A target namespace: the worker's account may act there as in short-drama-prod (deploy/kubernetes).
    await admin.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding(namespace, workerTargetBinding(namespace));
    await half(client, baseEnv, namespace, 1, id);
    await half(client, baseEnv, namespace, 2, id);
    console.log(`load average after: ${machineLine()}`);
  } finally {
    await core.deleteNamespace(namespace).catch((err: unknown) => console.log(`cleanup: could not delete namespace ${namespace}: ${String(err)}`));
    await close();
  }
}
