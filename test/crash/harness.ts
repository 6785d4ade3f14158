/**
 * The crash matrix (issue 15): for a scenario, a clean run records the activity executions of the
 * runbook's workflow (its history's scheduled activities, in order), the target systems' end state
 * and the run's outcome. Then for each point k and each phase (before activity k runs, after its
 * side effect but before its completion is reported) the scenario is reset, a worker process armed
 * for k/phase is started, the run is started in execute mode and approved step by step, the worker
 * SIGKILLs itself at k, a fresh worker finishes the run, and the end state and outcome must equal the
 * clean run's.
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
import { startScript, type RunningProcess } from '../helpers/process-output';
import { terminateRuns } from '../helpers/runbook-runs';
import type { CrashPhase } from './crash-worker';

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
  /** What the runbook may change, double effects included (generations, revisions, counts). */
  snapshot(): Promise<unknown>;
  /** Removes the scratch objects. */
  teardown(): Promise<void>;
}

export interface CrashPoint {
  k: number;
  activityId: string;
  activityType: string;
  /** The activity has a heartbeat timeout: its loss is noticed by Temporal within it, not failed by the harness. */
  heartbeats: boolean;
}

export interface CaseResult {
  runbook: string;
  k: number;
  activityType: string;
  phase: CrashPhase;
  ok: boolean;
  ms: number;
  failure?: string;
}

const stuckAfterMs = Number(process.env.CRASH_STUCK_MS ?? 240_000);
const startedBy = 'erin';
const approver = 'bob';

const stepEnds = new Set<string>(['applied', 'skipped', 'failed', 'refused', 'cancelled']);

/** The outcome a crash must not change: the outcome and each step's planned change and outcome. */
function outcomeOf(result: RunbookResultBase & { steps?: unknown }): unknown {
  return {
    outcome: result.outcome,
    plan: result.plan.map((p) => ({ stepId: p.stepId, needed: p.change.needed, summary: p.change.summary })),
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

export class CrashHarness {
  private bundleDir = mkdtempSync(join(tmpdir(), 'crash-matrix-'));
  private bundlePath = join(this.bundleDir, 'workflows.js');
  private client!: Client;
  private connection!: Connection;
  private runbooks!: RunbookClient;
  private workers = new Set<RunningProcess>();

  constructor(private readonly scenario: CrashScenario) {}

  private config() {
    return testbedConfig(this.scenario.configOverrides);
  }

  async start(): Promise<void> {
    // One bundle for every worker process (bundling per process would cost seconds each).
    const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} } });
    writeFileSync(this.bundlePath, code);
    const config = this.config();
    this.connection = await Connection.connect({ address: config.temporal.address });
    this.client = new Client({ connection: this.connection, namespace: config.temporal.namespace });
    await this.scenario.setup();
  }

  async stop(): Promise<void> {
    for (const worker of this.workers) await this.stopWorker(worker);
    await this.scenario.teardown();
    await this.connection?.close();
    rmSync(this.bundleDir, { recursive: true, force: true });
  }

  private async startWorker(taskQueue: string, arm?: { workflowId: string; activityId: string; phase: CrashPhase }): Promise<RunningProcess> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CRASH_CONFIG_OVERRIDES: JSON.stringify({ ...this.scenario.configOverrides, TEMPORAL_TASK_QUEUE: taskQueue }),
      CRASH_WORKFLOW_BUNDLE: this.bundlePath,
      CRASH_WORKFLOW_ID: arm?.workflowId ?? '',
      CRASH_ACTIVITY_ID: arm?.activityId ?? '',
      CRASH_PHASE: arm?.phase ?? '',
    };
    const worker = startScript('test/crash/crash-worker.ts', env);
    this.workers.add(worker);
    void worker.exited.then(() => this.workers.delete(worker));
    await worker.waitForLine((line) => line === 'crash worker ready', 60_000);
    return worker;
  }

  private async stopWorker(worker: RunningProcess): Promise<void> {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGTERM');
    await worker.exited;
  }

  /** Approves each step the run asks for until it finishes; queries fail while no worker runs, so errors are retried. */
  private async approveUntilDone(workflowId: string, done: () => boolean): Promise<void> {
    const approved = new Set<string>();
    while (!done()) {
      try {
        const status = await this.runbooks.getStatus(workflowId);
        const pending = status.pending;
        if (status.state === 'finished') return;
        if (pending && !approved.has(`${pending.stepId}/${pending.planHash}`)) {
          await this.runbooks.approve(workflowId, { stepId: pending.stepId, planHash: pending.planHash, approver, reason: `approve ${pending.stepId}` });
          approved.add(`${pending.stepId}/${pending.planHash}`);
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw err;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  private async run(taskQueue: string): Promise<{ workflowId: string; result: Promise<RunbookResultBase> }> {
    this.runbooks = createRunbookClient({ client: this.client, taskQueue });
    const { workflowId } = await this.runbooks.startRunbook(this.scenario.runbook, { ...this.scenario.input(), mode: 'execute' }, { startedBy });
    let finished = false;
    const result = this.runbooks.waitForResult<RunbookResultBase>(workflowId).finally(() => (finished = true));
    const approving = this.approveUntilDone(workflowId, () => finished);
    return { workflowId, result: Promise.all([result, approving]).then(([r]) => r) };
  }

  /** The clean run: its points, end state and outcome. */
  async record(): Promise<{ workflowId: string; points: CrashPoint[]; snapshot: unknown; outcome: unknown; ms: number }> {
    const began = Date.now();
    await this.scenario.reset();
    const taskQueue = `crash-${this.scenario.runbook}-clean-${Date.now()}`;
    const worker = await this.startWorker(taskQueue);
    try {
      const { workflowId, result } = await this.run(taskQueue);
      const outcome = outcomeOf(await withTimeout(result, stuckAfterMs, 'clean run'));
      const events = (await this.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
      const points = events.flatMap((e) => {
        const a = e.activityTaskScheduledEventAttributes;
        if (!a) return [];
        const hb = a.heartbeatTimeout;
        return [{ activityId: a.activityId!, activityType: a.activityType!.name!, heartbeats: Boolean(hb && (Number(hb.seconds ?? 0) > 0 || (hb.nanos ?? 0) > 0)) }];
      });
      await terminateRuns(this.config().temporal, [workflowId]); // (finished: nothing to do)
      return { workflowId, points: points.map((p, i) => ({ ...p, k: i + 1 })), snapshot: await this.scenario.snapshot(), outcome, ms: Date.now() - began };
    } finally {
      await this.stopWorker(worker);
    }
  }

  /** One cell of the matrix: crash at point k in the phase, finish with a fresh worker, compare. */
  async crashAt(point: CrashPoint, phase: CrashPhase, clean: { workflowId: string; snapshot: unknown; outcome: unknown }): Promise<CaseResult> {
    const began = Date.now();
    const where = `${this.scenario.runbook} k=${point.k} (${point.activityType}) ${phase}`;
    const cell = { runbook: this.scenario.runbook, k: point.k, activityType: point.activityType, phase };
    await this.scenario.reset();
    const taskQueue = `crash-${this.scenario.runbook}-${point.k}-${phase}-${Date.now()}`;
    let fresh: RunningProcess | undefined;
    // A run's workflow id is one per target (dedupe): the clean run's.
    let runId = clean.workflowId;
    try {
      const crashing = await this.startWorker(taskQueue, { workflowId: clean.workflowId, activityId: point.activityId, phase });
      const { workflowId: id, result } = await this.run(taskQueue);
      runId = id;
      const settled = result.then(
        (r) => ({ r }),
        (e: unknown) => ({ e }),
      );
      const first = await Promise.race([crashing.exited.then(() => 'died' as const), settled.then(() => 'finished' as const)]);
      if (first !== 'died') {
        await this.stopWorker(crashing);
        return { ...cell, ok: false, ms: Date.now() - began, failure: `${where}: the run finished without reaching the crash point` };
      }
      if (crashing.child.signalCode !== 'SIGKILL') return { ...cell, ok: false, ms: Date.now() - began, failure: `${where}: the worker exited (${crashing.child.exitCode}) instead of being killed` };
      fresh = await this.startWorker(taskQueue);
      // Temporal notices the lost attempt at its startToClose timeout (minutes); failing it by id is what that timeout does, at once. Heartbeating activities are left to their heartbeat timeout.
      if (!point.heartbeats)
        await this.client.activity.fail({ workflowId: id, activityId: point.activityId }, new Error('worker process killed (crash matrix)')).catch((err: unknown) => {
          throw new Error(`${where}: could not fail the dead attempt: ${(err as Error).message}`);
        });
      const outcome = await withTimeout(settled, stuckAfterMs, `${where}: the run`).then((s) => {
        if ('e' in s) throw s.e;
        return outcomeOf(s.r);
      });
      const snapshot = await this.scenario.snapshot();
      const diffs = [...differingFields(clean.outcome, outcome, 'outcome'), ...differingFields(clean.snapshot, snapshot, 'state')];
      return { ...cell, ok: diffs.length === 0, ms: Date.now() - began, ...(diffs.length ? { failure: `${where}: differs from the clean run: ${diffs.join('; ')}` } : {}) };
    } catch (err) {
      return { ...cell, ok: false, ms: Date.now() - began, failure: `${where}: ${(err as Error).message}` };
    } finally {
      if (fresh) await this.stopWorker(fresh);
      await terminateRuns(this.config().temporal, [runId]);
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

/** The summary table: runbook, k, activity, phase, outcome, seconds. */
export function summaryTable(results: CaseResult[]): string {
  const rows = results.map((r) => `| ${r.runbook} | ${r.k} | ${r.activityType} | ${r.phase} | ${r.ok ? 'same end state' : 'FAILED'} | ${(r.ms / 1000).toFixed(1)} |`);
  return ['| runbook | k | activity | phase | outcome | s |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
