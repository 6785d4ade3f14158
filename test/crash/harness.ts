/**
 * The crash matrix (issue 15): for a scenario, a clean run records the activity executions of the
 * runbook's workflow (its history's scheduled activities, in order), the target systems' end state
 * and the run's outcome. Then for each point k and each phase (before activity k runs, after its
 * side effect but before its completion is reported) the scenario is reset, a worker process armed
 * for k/phase is started, the run is started in execute mode and approved step by step, the worker
 * SIGKILLs itself at k, a fresh worker finishes the run, and the end state and outcome must equal the
 * clean run's. Item 2 of the issue, the server too: the Temporal dev server is restarted (same
 * database file) while the run waits for approval, and while an activity runs (its side effect done,
 * its completion held back by the worker until the server is back); the same comparison follows.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { createRunbookClient, type RunbookClient } from '../../client';
import type { RunbookResultBase } from '../../common/runbook';
import { testbedConfig } from '../helpers/testbed';
import { workflowBundle } from '../../workers/run-worker';
import { startScript, type RunningProcess } from '../helpers/process-output';
import { readBucketText, terminateRuns } from '../helpers/runbook-runs';
import { stopTemporalServer } from '../helpers/server-outage';
import { stopDependency, type DependencyName } from '../helpers/dependency-outage';
import type { ArmedPhase, CrashPhase } from './crash-worker';

export interface CrashScenario {
  /** The runbook's name (also the scenario's). */
  runbook: string;
  /** Config overrides of the workers (approvers, allowlists). */
  configOverrides: Record<string, string>;
  /** Creates the scenario's scratch objects (once). */
  setup(): Promise<void>;
  /** Puts the target systems back into the starting state. */
  reset(): Promise<void>;
  /** The run's input (execute mode is added). */
  input(): Record<string, unknown>;
  /** Plays a controller the run waits for (cert-manager), called every few hundred ms while a run is in flight. */
  tick?(): Promise<void>;
  /** What the runbook may change, double effects included (generations, revisions, counts). */
  snapshot(): Promise<unknown>;
  /** Removes the scratch objects. */
  teardown(): Promise<void>;
  /**
   * The systems the runbook changes, each made unreachable at an activity that calls it (by default
   * the change applied after the approval) for longer than that step's retries; `compensations` are
   * the steps the runbook promises to apply after such a failure (putting something back).
   */
  outages?: DependencyOutage[];
}

export interface DependencyOutage {
  system: DependencyName;
  /** The activity type whose first execution after the approval that is not a dry run meets the outage. */
  at?: string;
  compensations?: string[];
}

export interface CrashPoint {
  /** Its place in the clean run's sequence of activity executions (1-based). */
  k: number;
  activityType: string;
  /** It is the n-th execution of its type in the run: how the crashing worker finds it again. */
  ordinal: number;
}

/** When the Temporal server is restarted: while the run waits for its first approval, or while the change it approved is applied. */
export type ServerRestartMoment = 'approval' | 'activity';
const restartPhase = (moment: ServerRestartMoment) => (moment === 'approval' ? ('server restart, awaiting approval' as const) : ('server restart, activity running' as const));

export interface CaseResult {
  runbook: string;
  /** The clean run's row (its time; no comparison). */
  clean?: true;
  k: number;
  activityType: string;
  /** The n-th execution of its type (0 for the clean run's row and a restart awaiting approval). */
  ordinal: number;
  phase: CrashPhase | ReturnType<typeof restartPhase> | `${DependencyName} down`;
  ok: boolean;
  ms: number;
  failure?: string;
}

/** A case not finished within this (a run that should take seconds) is stuck: it fails, it does not hang the test run. */
const stuckAfterMs = Number(process.env.CRASH_STUCK_MS ?? 120_000);
/** A status query while no worker runs waits for one; each is bounded so the approver loop keeps going. */
const queryTimeoutMs = 5_000;
const startedBy = 'erin';
const approver = 'bob';

const stepEnds = new Set<string>(['applied', 'skipped', 'failed', 'refused', 'cancelled']);
/** Times computed from "now" (cutoffs, deadlines) differ between any two runs, crashed or not. */
const isoTimestamp = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
/** So do usage measurements of a live server (Redis's used_memory as a share of maxmemory). */
const measuredShare = /\d+(?:\.\d+)?% of /g;

/** The outcome a crash must not change: the outcome and each step's planned change (timestamps and measurements stripped) and outcome. */
function outcomeOf(result: RunbookResultBase): unknown {
  return {
    outcome: result.outcome,
    plan: result.plan.map((p) => ({ stepId: p.stepId, needed: p.change.needed, summary: p.change.summary.replace(isoTimestamp, '<time>').replace(measuredShare, '<share> of ') })),
    stepEvents: result.timeline.filter((e) => stepEnds.has(e.event)).map((e) => [e.stepId, e.event]),
  };
}

/** Top-level fields (and one level down) that differ between two snapshots, for the failure message. */
function differingFields(clean: unknown, crashed: unknown, prefix = ''): string[] {
  if (isDeepStrictEqual(clean, crashed)) return [];
  if (typeof clean !== 'object' || typeof crashed !== 'object' || clean === null || crashed === null || prefix.split('.').length > 2)
    return [`${prefix || '(value)'}: clean ${JSON.stringify(clean)}, crashed ${JSON.stringify(crashed)}`];
  const keys = new Set([...Object.keys(clean), ...Object.keys(crashed)]);
  return [...keys].flatMap((key) => differingFields((clean as Record<string, unknown>)[key], (crashed as Record<string, unknown>)[key], prefix ? `${prefix}.${key}` : key));
}

/** "1st", "2nd", "3rd", "11th". */
export function ordinalText(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th')}`;
}

/**
 * Where the server restarts under a running activity and an outage meets the runbook by default:
 * the first activity after the approval whose type ran as a dry run (`dryRun: true` in its input)
 * before it, the change applied for real (not the lock, the notice or a read around it); else the
 * first activity after the approval.
 */
function changeAppliedAfterApproval({ points, scheduledBeforeApproval, dryRuns }: CleanRun): CrashPoint | undefined {
  const planned = new Set(points.slice(0, scheduledBeforeApproval).flatMap((p, i) => (dryRuns[i] ? [p.activityType] : [])));
  const after = points.slice(scheduledBeforeApproval);
  return after.find((p) => planned.has(p.activityType) && !dryRuns[p.k - 1]) ?? after[0];
}

/** The first execution of an activity type after the approval that is not a dry run: where that type changes something. */
function appliedExecutionOf(clean: CleanRun, activityType: string): CrashPoint | undefined {
  return clean.points.slice(clean.scheduledBeforeApproval).find((p) => p.activityType === activityType && !clean.dryRuns[p.k - 1]);
}

/** Whether a scheduled activity's input (JSON payloads, no codec in the test bed's crash runs) asks for a dry run. */
function isDryRun(payloads: Array<{ data?: Uint8Array | null }> | null | undefined): boolean {
  return (payloads ?? []).some((p) => {
    try {
      return (JSON.parse(Buffer.from(p.data ?? []).toString('utf8')) as { dryRun?: unknown } | null)?.dryRun === true;
    } catch {
      return false;
    }
  });
}

export interface CleanRun {
  points: CrashPoint[];
  /** How many activities were scheduled before the first approval (all of them without one), and which of all were dry runs. */
  scheduledBeforeApproval: number;
  dryRuns: boolean[];
  snapshot: unknown;
  outcome: unknown;
  ms: number;
}

export class CrashHarness {
  private bundleDir = mkdtempSync(join(tmpdir(), 'crash-matrix-'));
  private bundlePath = join(this.bundleDir, 'workflows.js');
  private client!: Client;
  private connection!: Connection;
  private runbooks!: RunbookClient;
  private workers = new Set<RunningProcess>();
  private workerCount = 0;
  /**
   * One task queue for the whole scenario: the target lock workflow a run starts lives on the
   * queue of that run and outlives it (idle for minutes), so every run of the scenario, and the
   * restarted worker that serves both, must use the same queue (per-run queues left the lock on a
   * queue no worker served, and the next run waited for it forever).
   */
  private readonly taskQueue: string;

  constructor(private readonly scenario: CrashScenario) {
    this.taskQueue = `crash-${scenario.runbook}-${Date.now()}`;
  }

  private config() {
    return testbedConfig({ ...this.scenario.configOverrides, TEMPORAL_TASK_QUEUE: this.taskQueue });
  }

  async start(): Promise<void> {
    // One bundle for every worker process (bundling per process would cost seconds each).
    const { code } = await bundleWorkflowCode({
      ...workflowBundle,
      workflowInterceptorModules: workflowBundle.interceptors.workflowModules,
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
    });
    writeFileSync(this.bundlePath, code);
    const config = this.config();
    this.connection = await Connection.connect({ address: config.temporal.address });
    this.client = new Client({ connection: this.connection, namespace: config.temporal.namespace });
    this.runbooks = createRunbookClient({ client: this.client, taskQueue: this.taskQueue });
    await this.scenario.setup();
  }

  async stop(): Promise<void> {
    for (const worker of this.workers) await this.stopWorker(worker);
    // The target lock outlives the runs (idle for minutes) on a queue nobody serves any more.
    if (this.client)
      for await (const left of this.client.workflow.list({ query: `TaskQueue = '${this.taskQueue}' AND ExecutionStatus = 'Running'` }))
        await this.client.workflow
          .getHandle(left.workflowId)
          .terminate('crash matrix over')
          .catch(() => undefined); // ended meanwhile
    await this.scenario.teardown();
    await this.connection?.close();
    rmSync(this.bundleDir, { recursive: true, force: true });
  }

  private async startWorker(arm?: { point: CrashPoint; phase: ArmedPhase }): Promise<{ worker: RunningProcess; identity: string }> {
    const identity = `crash-worker-${process.pid}-${++this.workerCount}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CRASH_CONFIG_OVERRIDES: JSON.stringify({ ...this.scenario.configOverrides, TEMPORAL_TASK_QUEUE: this.taskQueue }),
      CRASH_WORKFLOW_BUNDLE: this.bundlePath,
      CRASH_WORKER_IDENTITY: identity,
      CRASH_RUNBOOK: this.scenario.runbook,
      CRASH_ACTIVITY_TYPE: arm?.point.activityType ?? '',
      CRASH_ORDINAL: String(arm?.point.ordinal ?? ''),
      CRASH_PHASE: arm?.phase ?? '',
    };
    const worker = startScript('test/crash/crash-worker.ts', env);
    this.workers.add(worker);
    void worker.exited.then(() => this.workers.delete(worker));
    await worker.waitForLine((line) => line === 'crash worker ready', 60_000);
    return { worker, identity };
  }

  private async stopWorker(worker: RunningProcess): Promise<void> {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGTERM');
    // A worker that does not stop gracefully in time is killed: stopping never hangs.
    const timer = setTimeout(() => worker.child.kill('SIGKILL'), 20_000);
    await worker.exited;
    clearTimeout(timer);
  }

  /**
   * Approves each step the run asks for until it finishes or the case gives up (`done`). Queries
   * wait for a worker (none runs between the kill and the restart), so each is bounded and errors
   * are retried.
   */
  private async approveUntilDone(workflowId: string, done: () => boolean, beforeFirstApproval?: () => Promise<void>): Promise<void> {
    const approved = new Set<string>();
    while (!done()) {
      let asked = false;
      try {
        await this.scenario.tick?.();
        const status = await withTimeout(this.runbooks.getStatus(workflowId), queryTimeoutMs, 'status query');
        const pending = status.pending;
        if (status.state === 'finished') return;
        asked = pending !== undefined;
        if (pending && !approved.has(`${pending.stepId}/${pending.planHash}`) && !beforeFirstApproval) {
          await withTimeout(this.runbooks.approve(workflowId, { stepId: pending.stepId, planHash: pending.planHash, approver, reason: `approve ${pending.stepId}` }), queryTimeoutMs, 'approval');
          approved.add(`${pending.stepId}/${pending.planHash}`);
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw err;
      }
      // Outside the try: a failure of the hook (a server that does not come back) ends the case.
      if (asked && beforeFirstApproval) {
        await beforeFirstApproval();
        beforeFirstApproval = undefined;
        continue;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** Starts the run in execute mode and approves it; `result` settles when it finishes (or the approver fails). */
  private async run(beforeFirstApproval?: () => Promise<void>): Promise<{ workflowId: string; result: Promise<RunbookResultBase>; giveUp: () => void }> {
    const { workflowId } = await this.runbooks.startRunbook(this.scenario.runbook, { ...this.scenario.input(), mode: 'execute' }, { startedBy });
    let finished = false;
    const result = this.runbooks.waitForResult<RunbookResultBase>(workflowId).finally(() => (finished = true));
    const approving = this.approveUntilDone(workflowId, () => finished, beforeFirstApproval);
    return { workflowId, result: Promise.all([result, approving]).then(([r]) => r), giveUp: () => (finished = true) };
  }

  /** The clean run: its points, end state and outcome. */
  async record(): Promise<CleanRun> {
    const began = Date.now();
    await this.scenario.reset();
    const { worker } = await this.startWorker();
    let run: Awaited<ReturnType<CrashHarness['run']>> | undefined;
    try {
      run = await this.run();
      const outcome = outcomeOf(await withTimeout(run.result, stuckAfterMs, `${this.scenario.runbook}: the clean run`));
      const events = (await this.client.workflow.getHandle(run.workflowId).fetchHistory()).events ?? [];
      const scheduled = events.flatMap((e) => e.activityTaskScheduledEventAttributes ?? []);
      const types = scheduled.map((a) => a.activityType?.name ?? '?');
      const points = types.map((activityType, i) => ({ k: i + 1, activityType, ordinal: types.slice(0, i + 1).filter((t) => t === activityType).length }));
      const firstApproval = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
      const scheduledBefore = firstApproval >= 0 ? events.slice(0, firstApproval).filter((e) => e.activityTaskScheduledEventAttributes).length : points.length;
      return {
        points,
        scheduledBeforeApproval: scheduledBefore,
        dryRuns: scheduled.map((a) => isDryRun(a.input?.payloads)),
        snapshot: await this.scenario.snapshot(),
        outcome,
        ms: Date.now() - began,
      };
    } finally {
      run?.giveUp();
      await this.stopWorker(worker);
      if (run) await terminateRuns(this.config().temporal, [run.workflowId]);
    }
  }

  /** One cell of the matrix: crash at the point in the phase, finish with a fresh worker, compare. */
  async crashAt(point: CrashPoint, phase: CrashPhase, clean: CleanRun): Promise<CaseResult> {
    const began = Date.now();
    const where = `${this.scenario.runbook} k=${point.k} (the ${ordinalText(point.ordinal)} ${point.activityType}) ${phase}`;
    const cell = { runbook: this.scenario.runbook, k: point.k, activityType: point.activityType, ordinal: point.ordinal, phase };
    const failed = (why: string): CaseResult => ({ ...cell, ok: false, ms: Date.now() - began, failure: `${where}: ${why}` });
    await this.scenario.reset();
    let fresh: RunningProcess | undefined;
    let crashing: RunningProcess | undefined;
    let run: Awaited<ReturnType<CrashHarness['run']>> | undefined;
    try {
      const started = await this.startWorker({ point, phase });
      crashing = started.worker;
      run = await this.run();
      const settled = run.result.then(
        (r) => ({ r }),
        (e: unknown) => ({ e }),
      );
      const first = await withTimeout(
        Promise.race([crashing.exited.then(() => 'died' as const), settled.then(() => 'finished' as const)]),
        stuckAfterMs,
        'waiting for the armed worker to reach the crash point: it neither died nor did the run finish',
      );
      if (first !== 'died') return failed('the run finished without reaching the crash point');
      if (crashing.child.signalCode !== 'SIGKILL') return failed(`the worker exited (code ${crashing.child.exitCode}) instead of being killed`);
      fresh = (await this.startWorker()).worker;
      // Temporal notices a lost attempt without heartbeats at its startToClose timeout (minutes); failing it is what that timeout does, at once.
      await this.failAttemptsOf(run.workflowId, started.identity).catch((err: unknown) => {
        throw new Error(`could not fail the dead worker's attempts: ${(err as Error).message}`);
      });
      const diffs = await this.differences(run.result, clean);
      return diffs.length ? failed(`differs from the clean run: ${diffs.join('; ')}`) : { ...cell, ok: true, ms: Date.now() - began };
    } catch (err) {
      return failed((err as Error).message);
    } finally {
      run?.giveUp();
      if (crashing) await this.stopWorker(crashing);
      if (fresh) await this.stopWorker(fresh);
      if (run) await terminateRuns(this.config().temporal, [run.workflowId]);
    }
  }

  /** How the run's outcome (once it finishes, bounded) and the end state differ from the clean run's. */
  private async differences(result: Promise<RunbookResultBase>, clean: CleanRun): Promise<string[]> {
    const outcome = outcomeOf(await withTimeout(result, stuckAfterMs, 'after the restart, the run'));
    const snapshot = await this.scenario.snapshot();
    return [...differingFields(clean.outcome, outcome, 'outcome'), ...differingFields(clean.snapshot, snapshot, 'state')];
  }

  /**
   * The server too: restarts the Temporal dev server while the run waits for its first approval,
   * or while the first activity after it runs (its side effect done, the worker holding its
   * completion back until the server answers again); the run must end as the clean one did. The
   * server is always left answering (restore waits for it, bounded), for the test files after.
   */
  async restartServerAt(moment: ServerRestartMoment, clean: CleanRun): Promise<CaseResult> {
    const began = Date.now();
    const point = moment === 'activity' ? changeAppliedAfterApproval(clean) : undefined;
    const phase = restartPhase(moment);
    const cell = { runbook: this.scenario.runbook, k: point?.k ?? 0, activityType: point?.activityType ?? 'approval', ordinal: point?.ordinal ?? 0, phase };
    const where = `${this.scenario.runbook}: ${phase}${point ? ` (k=${point.k}, the ${ordinalText(point.ordinal)} ${point.activityType})` : ''}`;
    const failed = (why: string): CaseResult => ({ ...cell, ok: false, ms: Date.now() - began, failure: `${where}: ${why}` });
    if (moment === 'activity' && !point) return failed('the clean run ran no activity after an approval');
    await this.scenario.reset();
    let worker: RunningProcess | undefined;
    let run: Awaited<ReturnType<CrashHarness['run']>> | undefined;
    let restarted: Promise<void> | undefined;
    const restartServer = () =>
      (restarted ??= (async () => {
        const outage = await stopTemporalServer(this.config().temporal);
        await outage.restore();
      })());
    try {
      worker = (await this.startWorker(point && { point, phase: 'hold' })).worker;
      run = await this.run(moment === 'approval' ? restartServer : undefined);
      if (point) {
        await worker.waitForLine((line) => line === 'crash worker holding', stuckAfterMs);
        await restartServer();
        worker.child.stdin.write('release\n');
      }
      const diffs = await this.differences(run.result, clean);
      if (!restarted) return failed('the run finished without the server being restarted');
      return diffs.length ? failed(`differs from the clean run: ${diffs.join('; ')}`) : { ...cell, ok: true, ms: Date.now() - began };
    } catch (err) {
      return failed((err as Error).message);
    } finally {
      // A failure between the stop and the start still waits for the restart: later cases and files need the server.
      await restarted?.catch(() => undefined);
      run?.giveUp();
      if (worker) await this.stopWorker(worker);
      if (run) await terminateRuns(this.config().temporal, [run.workflowId]);
    }
  }

  /**
   * Item 3, dependencies down: the worker holds the activity at the outage's point before it runs,
   * the system's server is stopped, the activity goes on; once the step has failed (its retries
   * spent against refused connections) or the run ended, the server starts again (a compensation
   * may need it). The run must end `failed`, a step's failure (or the run's end) must say
   * "<system> is unreachable", no step but a promised compensation may be applied after it, and the
   * incident report, when the run writes one, must say it too.
   */
  async dependencyDownAt(outage: DependencyOutage, clean: CleanRun): Promise<CaseResult> {
    const began = Date.now();
    const point = outage.at ? appliedExecutionOf(clean, outage.at) : changeAppliedAfterApproval(clean);
    const phase = `${outage.system} down` as const;
    const cell = { runbook: this.scenario.runbook, k: point?.k ?? 0, activityType: point?.activityType ?? outage.at ?? '?', ordinal: point?.ordinal ?? 0, phase };
    const where = `${this.scenario.runbook}: ${phase}${point ? ` at k=${point.k} (the ${ordinalText(point.ordinal)} ${point.activityType})` : ''}`;
    const failed = (why: string): CaseResult => ({ ...cell, ok: false, ms: Date.now() - began, failure: `${where}: ${why}` });
    if (!point) return failed(outage.at ? `the clean run applied no ${outage.at} after an approval` : 'the clean run ran no activity after an approval');
    const sentence = `${outage.system} is unreachable`;
    await this.scenario.reset();
    let worker: RunningProcess | undefined;
    let run: Awaited<ReturnType<CrashHarness['run']>> | undefined;
    let down: Awaited<ReturnType<typeof stopDependency>> | undefined;
    try {
      worker = (await this.startWorker({ point, phase: 'hold-before' })).worker;
      run = await this.run();
      const { workflowId } = run;
      let finished = false;
      const ended = run.result.then(
        (r) => ({ outcome: r.outcome as string | undefined, timeline: r.timeline, report: r.report }),
        // A run that cannot even end normally (its report not written) still has a status saying why.
        async (err: unknown) => {
          const status = await withTimeout(this.runbooks.getStatus(workflowId), queryTimeoutMs, 'status query').catch(() => undefined);
          return { outcome: status?.outcome as string | undefined, timeline: status?.timeline ?? [], report: undefined, error: (err as Error).message };
        },
      );
      void ended.finally(() => (finished = true));
      await worker.waitForLine((line) => line === 'crash worker holding', stuckAfterMs);
      down = await stopDependency(outage.system);
      worker.child.stdin.write('release\n');
      const deadline = Date.now() + stuckAfterMs;
      const stepFailed = async () => (await withTimeout(this.runbooks.getStatus(workflowId), queryTimeoutMs, 'status query')).timeline.some((e) => e.event === 'failed');
      while (!finished && !(await stepFailed().catch(() => false))) {
        if (Date.now() > deadline) throw new Error(`no step failed within ${stuckAfterMs / 1000} s of the outage (stuck)`);
        await new Promise((r) => setTimeout(r, 300));
      }
      await down.restore();
      const end = await withTimeout(ended, stuckAfterMs, `after ${outage.system} came back, the run`);
      const problems: string[] = [];
      if (end.outcome !== 'failed') problems.push(`it ended ${end.outcome ?? 'without an outcome'}, not failed`);
      const at = end.timeline.findIndex((e) => (e.event === 'failed' || e.event === 'finished') && e.detail?.includes(sentence));
      if (at < 0)
        problems.push(
          `no step's failure says "${sentence}" (failures: ${
            end.timeline
              .filter((e) => e.event === 'failed')
              .map((e) => `${e.stepId}: ${e.detail}`)
              .join(' | ') || 'none'
          })`,
        );
      const appliedAfter = at < 0 ? [] : end.timeline.slice(at + 1).filter((e) => e.event === 'applied' && !(outage.compensations ?? []).includes(e.stepId ?? ''));
      if (appliedAfter.length) problems.push(`applied after the failure: ${appliedAfter.map((e) => e.stepId).join(', ')}`);
      if (end.report && !(await readBucketText(end.report.markdownKey)).includes(sentence)) problems.push(`the incident report ${end.report.markdownKey} does not say "${sentence}"`);
      return problems.length ? failed(problems.join('; ')) : { ...cell, ok: true, ms: Date.now() - began };
    } catch (err) {
      return failed((err as Error).message);
    } finally {
      // Whatever happened, the system answers again for the cases and files after this one.
      await down?.restore().catch(() => undefined);
      run?.giveUp();
      if (worker) await this.stopWorker(worker);
      if (run) await terminateRuns(this.config().temporal, [run.workflowId]);
    }
  }

  /**
   * Fails the activity attempts of the run that the dead worker had started, so they are retried
   * now. Not those with a heartbeat timeout: Temporal notices their loss within it (30 s), and the
   * workflow tells that timeout apart (a deadline wait is tried again only after a heartbeat
   * timeout, workflows/rollout-wait.ts): failing them instead would fail the step.
   */
  private async failAttemptsOf(workflowId: string, identity: string): Promise<void> {
    const handle = this.client.workflow.getHandle(workflowId);
    const { raw } = await handle.describe();
    const dead = (raw.pendingActivities ?? []).filter((p) => p.lastWorkerIdentity === identity && p.activityId);
    if (!dead.length) return;
    const heartbeating = new Set(
      ((await handle.fetchHistory()).events ?? []).flatMap((e) => {
        const a = e.activityTaskScheduledEventAttributes;
        const seconds = Number(a?.heartbeatTimeout?.seconds?.toString() ?? 0) + (a?.heartbeatTimeout?.nanos ?? 0) / 1e9;
        return a?.activityId && seconds > 0 ? [a.activityId] : [];
      }),
    );
    for (const pending of dead) {
      if (heartbeating.has(pending.activityId!)) continue;
      await this.client.activity.fail({ workflowId, activityId: pending.activityId! }, new Error('worker process killed (crash matrix)')).catch((err: unknown) => {
        // Completed or retried meanwhile: nothing left to fail.
        if (!/not found|NOT_FOUND|mismatch/i.test((err as Error).message)) throw err;
      });
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s (stuck)`)), ms);
    }),
  ]);
}

const isOutage = (r: CaseResult) => r.phase.endsWith(' down');

/** A case's outcome in words: an outage case passes by failing the step as promised. */
export function outcomeText(r: CaseResult): string {
  if (!r.ok) return 'FAILED';
  return isOutage(r) ? 'step failed saying so' : 'same end state';
}

/** The summary: one row per case (runbook, point, phase, outcome, seconds), then one per runbook (points × phases, restarts, outages, failed, seconds). */
export function summaryTable(results: CaseResult[]): string {
  const rows = results.map(
    (r) => `| ${r.runbook} | ${r.k || ''} | ${r.ordinal ? `${r.activityType} #${r.ordinal}` : r.activityType} | ${r.clean ? '' : r.phase} | ${outcomeText(r)} | ${(r.ms / 1000).toFixed(1)} |`,
  );
  const runbooks = [...new Set(results.map((r) => r.runbook))].map((runbook) => {
    const cases = results.filter((r) => r.runbook === runbook && !r.clean);
    const crashes = cases.filter((r) => r.phase === 'before' || r.phase === 'after');
    const outages = cases.filter(isOutage);
    const seconds = results.filter((r) => r.runbook === runbook).reduce((sum, r) => sum + r.ms, 0) / 1000;
    return `| ${runbook} | ${new Set(crashes.map((r) => r.k)).size} | ${crashes.length} | ${cases.length - crashes.length - outages.length} | ${outages.length} | ${cases.filter((r) => !r.ok).length} | ${seconds.toFixed(0)} |`;
  });
  return [
    '| runbook | k | activity | phase | outcome | s |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    '| runbook | points | worker kills | server restarts | outages | failed | s |',
    '|---|---|---|---|---|---|---|',
    ...runbooks,
  ].join('\n');
}
