import { createHash, randomUUID } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { loadConfig } from '../config/load';
import { readTestbedEnv } from '../scripts/testbed';
import { buildDependencies } from '../workers/dependencies';
import { workflowBundle } from '../workers/run-worker';
import type { kernelBenchRunbook, KernelBenchInput, plainBenchWorkflow } from './workflows/kernel-bench-runbook';

interface Call {
  name: string;
  /** For benchNoop: the step it belongs to. */
  step?: number;
  start: number;
  end: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Wraps each activity to record when it ran, so kernel time = wall time between steps minus activity time. */
function timed<T extends Record<string, unknown>>(activities: T, calls: Call[]): T {
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [
      name,
      async (...args: unknown[]) => {
        const start = performance.now();
        try {
          return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
        } finally {
          calls.push({ name, start, end: performance.now(), step: name === 'benchNoop' ? (args[0] as number) : undefined });
        }
      },
    ]),
  ) as T;
}

/**
 * `npm run bench -- kernel`: the kernel's own overhead per step (50 trivial steps on the Temporal
 * dev server: wall time per step minus the activities' time) and the history size of a run that
 * collected 50 MB of evidence (kept in S3; the history holds keys, sizes and digests).
 */
export default async function kernelBench(): Promise<void> {
  const env = readTestbedEnv();
  try {
    Runtime.install({ logger: new DefaultLogger(process.env.BENCH_LOG_LEVEL === 'DEBUG' ? 'DEBUG' : 'WARN') });
  } catch {
    // installed already
  }
  const steps = 50;
  const policy = { name: 'bench', runbooks: ['kernelBenchRunbook'], steps: Array.from({ length: steps }, (_, i) => `change-${i}`), onlyScheduled: false };
  const config = loadConfig({ env: { ...env, TEMPORAL_TASK_QUEUE: `bench-${randomUUID()}`, APPROVAL_POLICIES: JSON.stringify([policy]) } });
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection });
  const built = buildDependencies(config, Runtime.instance().logger, client);
  const calls: Call[] = [];
  const s3 = built.deps.s3!;
  const benchActivities = {
    benchNoop: async (step: number) => step,
    benchEvidence: async ({ key, sizeBytes }: { key: string; sizeBytes: number }) => {
      const fullKey = `${s3.evidencePrefix}${key}`;
      const body = Buffer.alloc(sizeBytes, key);
      const sha256 = createHash('sha256').update(body).digest('hex');
      await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: fullKey, Body: body }));
      return { key: fullKey, size: body.length, sha256 };
    },
  };
  const nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: config.temporal.taskQueue,
    workflowsPath: require.resolve('./workflows'),
    interceptors: workflowBundle.interceptors,
    activities: timed({ ...createActivities(built.deps), ...benchActivities }, calls),
  });

  const runOnce = async (input: KernelBenchInput) => {
    calls.length = 0;
    const t0 = performance.now();
    const handle = await client.workflow.start<typeof kernelBenchRunbook>('kernelBenchRunbook', {
      taskQueue: config.temporal.taskQueue,
      workflowId: `kernelBenchRunbook/${input.target}`,
      args: [input],
    });
    await handle.result();
    const total = performance.now() - t0;
    const history = await handle.fetchHistory();
    const historyBytes = temporal.api.history.v1.History.encode(history).finish().length;
    return { total, historyBytes, calls: [...calls].sort((a, b) => a.start - b.start), events: history.events?.length ?? 0 };
  };

  /** Per step: from its first activity's start to the next step's, minus the activity time inside. */
  const perStepOverhead = (stepCalls: Call[][]) =>
    stepCalls.slice(0, -1).map((callsOfStep, i) => {
      const next = stepCalls[i + 1]![0]!.start;
      const busy = callsOfStep.reduce((sum, c) => sum + (c.end - c.start), 0);
      return next - callsOfStep[0]!.start - busy;
    });

  await worker.runUntil(async () => {
    const read = await runOnce({ target: `bench/${randomUUID()}`, steps, kind: 'read' });
    const readSteps = read.calls.filter((c) => c.name === 'benchNoop').map((c) => [c]);
    const readOverhead = perStepOverhead(readSteps);
    console.log(
      `read steps: ${steps} in ${read.total.toFixed(0)} ms; kernel + Temporal overhead per step: median ${median(readOverhead).toFixed(1)} ms, mean ${(readOverhead.reduce((a, b) => a + b, 0) / readOverhead.length).toFixed(1)} ms (target: median under 10 ms); history ${read.events} events, ${(read.historyBytes / 1024).toFixed(1)} KiB`,
    );

    calls.length = 0;
    const plainStart = performance.now();
    await client.workflow.execute<typeof plainBenchWorkflow>('plainBenchWorkflow', { taskQueue: config.temporal.taskQueue, workflowId: `plainBench/${randomUUID()}`, args: [{ steps }] });
    const plainTotal = performance.now() - plainStart;
    const plainOverhead = perStepOverhead([...calls].sort((a, b) => a.start - b.start).map((c) => [c]));
    console.log(`baseline without the kernel: ${steps} activity calls in ${plainTotal.toFixed(0)} ms; Temporal round trip per step: median ${median(plainOverhead).toFixed(1)} ms`);
    console.log(
      `=> the kernel's own cost per read step: median ${(median(readOverhead) - median(plainOverhead)).toFixed(1)} ms, whole run ${((read.total - plainTotal) / steps).toFixed(1)} ms per step`,
    );

    const local = await runOnce({ target: `bench/${randomUUID()}`, steps, kind: 'local-read' });
    const localOverhead = perStepOverhead(local.calls.filter((c) => c.name === 'benchNoop').map((c) => [c]));
    console.log(
      `read steps through local activities (no server round trip per step): ${steps} in ${local.total.toFixed(0)} ms; kernel overhead per step: median ${median(localOverhead).toFixed(1)} ms (target: median under 10 ms)`,
    );

    const change = await runOnce({ target: `bench/${randomUUID()}`, steps, kind: 'change' });
    // Each change step a policy approves: lock request, plan (under the lock), apply; the lock request counts with the step before it (the cycle is the same).
    const changeSteps: Call[][] = [];
    let current = -1;
    for (const call of change.calls) {
      if (call.step !== undefined) current = call.step;
      if (current < 0 || call.name === 'writeIncidentReport') continue;
      (changeSteps[current] ??= []).push(call);
    }
    const changeOverhead = perStepOverhead(changeSteps);
    console.log(
      `change steps (auto-approved by policy, with the target lock): ${steps} in ${change.total.toFixed(0)} ms; overhead per step: median ${median(changeOverhead).toFixed(1)} ms (goal: median ≤ 100 ms; 3 activities, a lock grant and a release each), ${(median(changeOverhead) / median(plainOverhead)).toFixed(1)} Temporal round trips of this run`,
    );

    const evidenceMb = 50;
    const evidence = await runOnce({ target: `bench/${randomUUID()}`, steps: evidenceMb, kind: 'evidence', evidenceBytesPerStep: 1024 * 1024 });
    console.log(
      `evidence: ${evidenceMb} MB collected into S3 in ${evidence.total.toFixed(0)} ms; workflow history ${(evidence.historyBytes / 1024).toFixed(1)} KiB over ${evidence.events} events (target: under 256 KiB)`,
    );
  });
  await built.close();
  await nativeConnection.close();
  await connection.close();
}
