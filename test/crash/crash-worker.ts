/**
 * A worker process for the crash matrix (test/crash/harness.ts starts it as a child): the real
 * activities and workflows on the test bed's Temporal, the task queue and config overrides it is
 * given (CRASH_CONFIG_OVERRIDES, JSON). Armed with CRASH_RUNBOOK, CRASH_ACTIVITY_TYPE,
 * CRASH_ORDINAL and CRASH_PHASE it SIGKILLs itself, no graceful stop, at the n-th activity of that
 * type the runbook's run starts (first attempts only: a point stable across runs, unlike activity
 * ids, which count every command of the workflow): `before` its code runs, or `after` its code
 * returned (the side effect done) but before the completion reaches Temporal. Armed with `hold`
 * it does not die: the side effect done, it prints "crash worker holding" and reports the completion
 * only once the harness writes a line to its stdin (the harness restarts the Temporal server
 * meanwhile); with `hold-before` it holds the same way before the activity's code runs (the harness
 * stops a system the activity calls meanwhile). Unarmed it is the fresh worker that finishes the run.
 */
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type ActivityInboundCallsInterceptor, type ActivityExecuteInput, type Next } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { buildDependencies } from '../../workers/dependencies';
import { workflowBundle } from '../../workers/run-worker';
import { testbedConfig } from '../helpers/testbed';

export type CrashPhase = 'before' | 'after';
/** What the armed worker does at its point: die (a crash phase), hold the completion back, or hold the start. */
export type ArmedPhase = CrashPhase | 'hold' | 'hold-before';

const armed = process.env.CRASH_ACTIVITY_TYPE
  ? { runbook: process.env.CRASH_RUNBOOK, activityType: process.env.CRASH_ACTIVITY_TYPE, ordinal: Number(process.env.CRASH_ORDINAL), phase: process.env.CRASH_PHASE as ArmedPhase }
  : undefined;
/** First attempts of the armed activity type seen so far in the runbook's runs. */
let seen = 0;

/** Whether this activity execution is the armed point (counting it when it is of the armed type). */
function isArmedPoint(info: Context['info']): boolean {
  if (!armed || info.workflowType !== armed.runbook || info.activityType !== armed.activityType || info.attempt !== 1) return false;
  seen += 1;
  return seen === armed.ordinal;
}

const die = (): never => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL did not end the process');
};

async function holdUntilReleased(): Promise<void> {
  console.log('crash worker holding');
  await new Promise((release) => process.stdin.once('data', release));
}

class CrashAt implements ActivityInboundCallsInterceptor {
  constructor(private readonly hit: boolean) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    if (this.hit && armed?.phase === 'before') die();
    if (this.hit && armed?.phase === 'hold-before') await holdUntilReleased();
    const result = await next(input);
    if (this.hit && armed?.phase === 'after') die();
    if (this.hit && armed?.phase === 'hold') await holdUntilReleased();
    return result;
  }
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const config = testbedConfig(JSON.parse(process.env.CRASH_CONFIG_OVERRIDES ?? '{}') as Record<string, string>);
  const nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const built = buildDependencies(config, Runtime.instance().logger, client);
  const bundle = process.env.CRASH_WORKFLOW_BUNDLE;
  const worker = await Worker.create({
    connection: nativeConnection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    // The harness fails the dead worker's attempts by this identity instead of waiting minutes for their timeouts.
    identity: process.env.CRASH_WORKER_IDENTITY,
    ...(bundle ? { workflowBundle: { codePath: bundle } } : workflowBundle),
    activities: createActivities(built.deps),
    // The dead worker's sticky queue would hold the next workflow task for the default 10 s.
    stickyQueueScheduleToStartTimeout: '1 second',
    interceptors: {
      ...(bundle ? {} : workflowBundle.interceptors),
      activity: [(ctx: Context) => ({ inbound: new CrashAt(isArmedPoint(ctx.info)) })],
    },
  });
  console.log('crash worker ready');
  await worker.run();
  await built.close();
  await connection.close();
  await nativeConnection.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
