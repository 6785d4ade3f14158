import { CancellationScope, patched, workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import type { Activities } from '../activities';
import { type DbConnectionExhaustionInput, type dbConnectionExhaustionInput } from '../common/inputs/db-connection-exhaustion';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read, wait, write } from './activity-proxies';
import { catalog } from '../common/catalog';
import { errorText, failure } from '../common/failures';

export interface DbConnectionExhaustionResult extends RunbookResultBase {
  before: { total: number; maxConnections: number; usage: number };
  after?: { total: number; maxConnections: number; usage: number };
}

const percent = (usage: number) => `${Math.round(usage * 100)}%`;

type Input = z.infer<typeof dbConnectionExhaustionInput>;
type ConnectionStats = Awaited<ReturnType<Activities['connectionStats']>>;
type MaxConnectionsResult = Awaited<ReturnType<Activities['setMaxConnections']>>;
/** The max_connections asked for (given, else 1.5 times the current, capped) and whether raising it is wanted at all. */
type Raise = { target: number; wanted: boolean };
type RestartPlan = { method: 'rollout' | 'scale-to-zero'; replicas: number; restartedAt?: string };
/** Runs before it rolled every restart; a single-writer volume under RollingUpdate is now scaled to 0 and back. */
const scaleToZeroPatch = 'db-restart-scale-to-zero-for-single-writer-volumes';

/** The run's steps in order; helpers take a run typed by them, so a step id is checked by tsc. */
const dbConnectionExhaustionSteps = ['connection-stats', 'terminate-idle', 'raise-max-connections', 'restart-database', 'verify'] as const;
export type DbConnectionExhaustionStep = (typeof dbConnectionExhaustionSteps)[number];

/**
 * 场景2 数据库连接耗尽. What it does: catalog.dbConnectionExhaustion.
 * max_connections is raised with ALTER SYSTEM, which takes effect only after the restart; the run
 * waits until PostgreSQL accepts connections so the verify step reads the restarted server.
 */
export async function dbConnectionExhaustion(raw: DbConnectionExhaustionInput): Promise<DbConnectionExhaustionResult> {
  const input = validateInput(catalog.dbConnectionExhaustion, raw);
  const { namespace, deployment, database } = input;
  const run = await RunbookRun.begin(catalog.dbConnectionExhaustion, input, dbConnectionExhaustionSteps);
  await read.assertTargetsAllowed({ namespaces: [namespace], databases: [database], names: [{ name: deployment, what: 'deployment' }] });

  const stats = await run.read(
    'connection-stats',
    'Connections against max_connections',
    () => read.connectionStats({ database }),
    (s) =>
      `${s.total}/${s.maxConnections} (${percent(s.usage)}); ${Object.entries(s.byState)
        .map(([state, n]) => `${state} ${n}`)
        .join(', ')}; oldest idle ${s.oldestIdleSeconds ?? 0}s`,
  );

  await terminateIdleStep(run, input);
  const raise: Raise = {
    target: input.raiseMaxConnectionsTo ?? Math.min(input.maxConnectionsCap, Math.ceil(stats.maxConnections * 1.5)),
    wanted: input.raiseMaxConnectionsTo !== undefined || stats.usage >= input.raiseWhenUsageAbove,
  };
  const restartNeeded = await raiseMaxConnectionsStep(run, input, stats, raise);
  const stranded = await restartDatabaseStep(run, input, stats, raise, restartNeeded);

  const after = input.mode === 'execute' ? await verifyEffects(run, input, raise) : undefined;
  return reportConnections(run, input, stats, after, stranded);
}

type AfterChanges = { stats: ConnectionStats; setting?: MaxConnectionsResult['before'] };

/**
 * Connections after the changes, and what the restart promised: max_connections running at the
 * raised value, none pending (terminated connections are checked by the terminating activity).
 */
async function verifyEffects(run: RunbookRun<DbConnectionExhaustionStep>, input: Input, raise: Raise): Promise<ConnectionStats | undefined> {
  const { database, namespace, deployment } = input;
  const restarted = run.applied('restart-database');
  const promised = run.applied('raise-max-connections') ? raise.target : undefined;
  const after = await run.verify('verify', 'Connections after the changes', {
    read: async () => ({
      stats: await read.connectionStats({ database }),
      // A dry run changes nothing: it reads the running value and pending_restart from pg_settings.
      ...(restarted ? { setting: (await read.setMaxConnections({ value: raise.target, dryRun: true })).before } : {}),
    }),
    describe: (a: AfterChanges) => `${a.stats.total}/${a.stats.maxConnections} (${percent(a.stats.usage)})`,
    effects: restarted
      ? [
          {
            promised: `max_connections ${promised ?? 'as configured'} once ${namespace}/${deployment} restarted`,
            holds: ({ setting }: AfterChanges) => setting?.pendingRestart === false && (promised === undefined || setting.running === promised),
            found: ({ setting }: AfterChanges) =>
              setting?.pendingRestart === false
                ? `SHOW max_connections returns ${setting.running}`
                : `max_connections is still ${setting?.running} after the restart (pending_restart ${setting?.pendingRestart}: the server that answers did not restart)`,
          },
        ]
      : [],
    // PostgreSQL already accepts connections after the restart: what it runs with will not change by waiting.
    withinSeconds: 5,
    before: async () => ({ stats: await read.connectionStats({ database }) }),
  });
  return after?.stats;
}

/** ⚠ idle connections older than the threshold, at most maxTerminate of them. */
async function terminateIdleStep(run: RunbookRun<DbConnectionExhaustionStep>, input: Input): Promise<void> {
  const { database } = input;
  await run.change({
    stepId: 'terminate-idle',
    title: `Terminate idle connections older than ${input.idleOlderThanSeconds}s`,
    plan: async () => {
      const dry = await read.terminateIdleConnections({ olderThanSeconds: input.idleOlderThanSeconds, max: input.maxTerminate, dryRun: true, database });
      return {
        summary: `terminate idle connections to ${database} older than ${input.idleOlderThanSeconds}s, at most ${input.maxTerminate}`,
        needed: dry.pids.length > 0,
        observed: { matching: dry.matched, wouldTerminate: dry.pids.length, capped: dry.capped },
      };
    },
    apply: async () => {
      const done = await write.terminateIdleConnections({ olderThanSeconds: input.idleOlderThanSeconds, max: input.maxTerminate, database });
      return `terminated ${done.pids.length} idle connections${done.capped ? ' (cap reached)' : ''}`;
    },
  });
}

/** ⚠ max_connections raised (ALTER SYSTEM); returns whether a restart is needed for it to take effect. */
async function raiseMaxConnectionsStep(run: RunbookRun<DbConnectionExhaustionStep>, input: Input, stats: ConnectionStats, raise: Raise): Promise<boolean> {
  const { target } = raise;
  let restartNeeded = false;
  await run.change({
    stepId: 'raise-max-connections',
    title: 'Raise max_connections',
    allowedRoles: rolesFrom('l2'),
    plan: async () => {
      if (!raise.wanted || target <= stats.maxConnections) {
        return { summary: `max_connections stays ${stats.maxConnections} (usage ${percent(stats.usage)} below ${percent(input.raiseWhenUsageAbove)} or at the cap)`, needed: false };
      }
      const dry = await read.setMaxConnections({ value: target, dryRun: true });
      restartNeeded = dry.before.pendingRestart || dry.needsChange;
      return { summary: `max_connections ${dry.before.running} -> ${target} (ALTER SYSTEM; takes effect after a restart)`, details: { from: dry.before.running, to: target }, needed: dry.needsChange };
    },
    apply: async () => {
      const done = await write.setMaxConnections({ value: target });
      restartNeeded = done.after.pendingRestart || done.restartNeeded;
      return `max_connections pending ${done.after.pending ?? target}, restart ${restartNeeded ? 'needed' : 'not needed'}`;
    },
  });
  return restartNeeded;
}

/**
 * ⚠ restart of the database deployment, then waits until PostgreSQL accepts connections. A
 * single-writer volume under RollingUpdate is restarted by scaling to 0 and back, so two servers
 * never share it. Returns what to do by hand when a failure left the deployment at 0 replicas.
 */
async function restartDatabaseStep(run: RunbookRun<DbConnectionExhaustionStep>, input: Input, stats: ConnectionStats, raise: Raise, restartNeeded: boolean): Promise<string | undefined> {
  const { namespace, deployment } = input;
  // The restart timestamp is the run's own: a retried or re-approved restart is the same restart.
  const restartedAt = workflowInfo().startTime.toISOString();
  const safeRestart = patched(scaleToZeroPatch);
  let stranded: string | undefined;
  await run.change<RestartPlan | { restartedAt: string }>({
    stepId: 'restart-database',
    title: `Restart deployment ${deployment}`,
    allowedRoles: rolesFrom('l2'),
    dependsOn: ['raise-max-connections'],
    plan: async () => {
      const raised = run.outcomeOf('raise-max-connections');
      const needed = input.mode === 'plan' ? raise.wanted && raise.target > stats.maxConnections : raised === 'applied' || restartNeeded;
      if (!needed) return { summary: `no restart: max_connections unchanged`, needed: false };
      const how = safeRestart ? await read.restartMethod({ namespace, deployment }) : undefined;
      if (how?.method === 'scale-to-zero') {
        if (how.replicas === 0) return { summary: `no restart: ${namespace}/${deployment} is at 0 replicas; scale it up by hand`, needed: false };
        const summary = `restart of ${namespace}/${deployment} by scaling ${how.replicas} -> 0, waiting until no pod of it exists, then back to ${how.replicas} (${how.reason})`;
        return { summary, details: { method: how.method, replicas: how.replicas }, needed: true };
      }
      const dry = await read.restartRollout({ namespace, deployment, restartedAt, dryRun: true });
      const details = safeRestart ? { method: 'rollout' as const, replicas: how?.replicas ?? 1, restartedAt } : { restartedAt };
      return { summary: `rolling restart of ${namespace}/${deployment} (restartedAt ${restartedAt})`, details, needed: dry.changed || input.mode === 'plan' };
    },
    apply: async (planned) => {
      const details = planned.details as RestartPlan | undefined;
      let restarted: string;
      if (details?.method === 'scale-to-zero') {
        restarted = await restartByScalingToZero(input, details.replicas, (note) => {
          stranded = note;
        });
      } else {
        restarted = (await write.restartRollout({ namespace, deployment, restartedAt })).message;
      }
      const rollout = await wait.waitForRolloutComplete({ namespace, deployment, timeoutSeconds: input.restartTimeoutSeconds });
      const ready = await wait.waitForPostgres({ timeoutSeconds: input.restartTimeoutSeconds });
      return `${restarted}; rollout complete (${rollout.readyReplicas}/${rollout.replicas} ready); PostgreSQL ${ready.serverVersion} accepts connections after ${ready.attempts} attempts`;
    },
  });
  return stranded;
}

/**
 * Replicas to 0, until no pod exists (a terminating one may still write), back to `replicas`.
 * A failure after the first scale leaves the database down: the error, and `onStranded`, say so
 * and how to restore; it is not scaled back while an old pod may still hold the volume.
 */
async function restartByScalingToZero(input: Input, replicas: number, onStranded: (note: string) => void): Promise<string> {
  const { namespace, deployment } = input;
  // Not given up on a cancel from Temporal: that would leave the database down.
  return CancellationScope.nonCancellable(async () => {
    await write.scaleDeployment({ namespace, deployment, replicas: 0 });
    try {
      const gone = await wait.waitForNoPods({ namespace, deployment, timeoutSeconds: input.restartTimeoutSeconds });
      await write.scaleDeployment({ namespace, deployment, replicas });
      return `deployments.apps/${deployment} scaled to 0, no pod left after ${Math.round(gone.waitedMs / 1000)}s, scaled back to ${replicas}`;
    } catch (err) {
      // What to do first: the cause after it may be long and is cut in the timeline.
      const note = `${namespace}/${deployment} is at 0 replicas (the database is down). Once no pod of it is left, restore with: kubectl -n ${namespace} scale deployment/${deployment} --replicas=${replicas}. Cause: ${errorText(err)}`;
      onStranded(note);
      throw failure('RolloutIncomplete', note);
    }
  });
}

/** The incident report and the result: connections before and after. */
async function reportConnections(
  run: RunbookRun<DbConnectionExhaustionStep>,
  input: Input,
  stats: ConnectionStats,
  after: ConnectionStats | undefined,
  stranded?: string,
): Promise<DbConnectionExhaustionResult> {
  const { namespace, deployment, database } = input;
  const top = stats.byApplication[0];
  const result = await run.finish(`connections ${stats.total}/${stats.maxConnections} before${after ? `, ${after.total}/${after.maxConnections} after` : ''}`, {
    impact: `${stats.total} of ${stats.maxConnections} connections in use (${percent(stats.usage)}); new connections to ${database} risk being refused.`,
    rootCause: `Connections by state: ${Object.entries(stats.byState)
      .map(([s, n]) => `${s} ${n}`)
      .join(', ')}; largest client: ${top ? `${top.applicationName || '(no application_name)'} with ${top.count}` : 'none'}; oldest idle ${stats.oldestIdleSeconds ?? 0}s.`,
    solution: `Idle connections older than ${input.idleOlderThanSeconds}s terminated (at most ${input.maxTerminate}); max_connections raised only with approval and applied by a restart of ${namespace}/${deployment}.${stranded ? ` RESTART INCOMPLETE: ${stranded}.` : ''}`,
    prevention: 'Pool connections (PgBouncer or smaller per-process pools), set idle_session_timeout / idle_in_transaction_session_timeout, and alert at 80% of max_connections.',
  });
  return {
    ...result,
    before: { total: stats.total, maxConnections: stats.maxConnections, usage: stats.usage },
    after: after && { total: after.total, maxConnections: after.maxConnections, usage: after.usage },
  };
}
