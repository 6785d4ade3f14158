import { workflowInfo } from '@temporalio/workflow';
import type { z } from 'zod';
import type { Activities } from '../activities';
import { type DbConnectionExhaustionInput, type dbConnectionExhaustionInput } from '../common/inputs/db-connection-exhaustion';
import { rolesFrom, type RunbookResultBase } from '../common/runbook';
import { RunbookRun } from './kernel/runbook-run';
import { validateInput } from './validate-input';
import { read, wait, write } from './activity-proxies';
import { catalog } from '../common/catalog';

export interface DbConnectionExhaustionResult extends RunbookResultBase {
  before: { total: number; maxConnections: number; usage: number };
  after?: { total: number; maxConnections: number; usage: number };
}

const percent = (usage: number) => `${Math.round(usage * 100)}%`;

type Input = z.infer<typeof dbConnectionExhaustionInput>;
type ConnectionStats = Awaited<ReturnType<Activities['connectionStats']>>;
/** The max_connections asked for (given, else 1.5 times the current, capped) and whether raising it is wanted at all. */
type Raise = { target: number; wanted: boolean };

/**
 * 场景2 数据库连接耗尽: connections against max_connections by state, application and age;
 * ⚠ terminate idle connections older than the threshold (capped), ⚠ raise max_connections
 * (ALTER SYSTEM) and ⚠ restart the database deployment, then wait until it accepts connections.
 */
export async function dbConnectionExhaustion(raw: DbConnectionExhaustionInput): Promise<DbConnectionExhaustionResult> {
  const input = validateInput(catalog.dbConnectionExhaustion, raw);
  const { namespace, deployment, database } = input;
  const run = await RunbookRun.begin(catalog.dbConnectionExhaustion, input, ['connection-stats', 'terminate-idle', 'raise-max-connections', 'restart-database', 'verify']);
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
  await restartDatabaseStep(run, input, stats, raise, restartNeeded);

  const after =
    input.mode === 'execute'
      ? await run.read(
          'verify',
          'Connections after the changes',
          () => read.connectionStats({ database }),
          (s) => `${s.total}/${s.maxConnections} (${percent(s.usage)})`,
        )
      : undefined;
  return reportConnections(run, input, stats, after);
}

/** ⚠ idle connections older than the threshold, at most maxTerminate of them. */
async function terminateIdleStep(run: RunbookRun, input: Input): Promise<void> {
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
async function raiseMaxConnectionsStep(run: RunbookRun, input: Input, stats: ConnectionStats, raise: Raise): Promise<boolean> {
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

/** ⚠ rolling restart of the database deployment, then waits until PostgreSQL accepts connections. */
async function restartDatabaseStep(run: RunbookRun, input: Input, stats: ConnectionStats, raise: Raise, restartNeeded: boolean): Promise<void> {
  const { namespace, deployment } = input;
  // The restart timestamp is the run's own: a retried or re-approved restart is the same restart.
  const restartedAt = workflowInfo().startTime.toISOString();
  await run.change({
    stepId: 'restart-database',
    title: `Restart deployment ${deployment}`,
    allowedRoles: rolesFrom('l2'),
    dependsOn: ['raise-max-connections'],
    plan: async () => {
      const raised = run.outcomeOf('raise-max-connections');
      const needed = input.mode === 'plan' ? raise.wanted && raise.target > stats.maxConnections : raised === 'applied' || restartNeeded;
      if (!needed) return { summary: `no restart: max_connections unchanged`, needed: false };
      const dry = await read.restartRollout({ namespace, deployment, restartedAt, dryRun: true });
      return { summary: `rolling restart of ${namespace}/${deployment} (restartedAt ${restartedAt})`, details: { restartedAt }, needed: dry.changed || input.mode === 'plan' };
    },
    apply: async () => {
      const restarted = await write.restartRollout({ namespace, deployment, restartedAt });
      const rollout = await wait.waitForRolloutComplete({ namespace, deployment, timeoutSeconds: input.restartTimeoutSeconds });
      const ready = await wait.waitForPostgres({ timeoutSeconds: input.restartTimeoutSeconds });
      return `${restarted.message}; rollout complete (${rollout.readyReplicas}/${rollout.replicas} ready); PostgreSQL ${ready.serverVersion} accepts connections after ${ready.attempts} attempts`;
    },
  });
}

/** The incident report and the result: connections before and after. */
async function reportConnections(run: RunbookRun, input: Input, stats: ConnectionStats, after: ConnectionStats | undefined): Promise<DbConnectionExhaustionResult> {
  const { namespace, deployment, database } = input;
  const top = stats.byApplication[0];
  const result = await run.finish(`connections ${stats.total}/${stats.maxConnections} before${after ? `, ${after.total}/${after.maxConnections} after` : ''}`, {
    impact: `${stats.total} of ${stats.maxConnections} connections in use (${percent(stats.usage)}); new connections to ${database} risk being refused.`,
    rootCause: `Connections by state: ${Object.entries(stats.byState)
      .map(([s, n]) => `${s} ${n}`)
      .join(', ')}; largest client: ${top ? `${top.applicationName || '(no application_name)'} with ${top.count}` : 'none'}; oldest idle ${stats.oldestIdleSeconds ?? 0}s.`,
    solution: `Idle connections older than ${input.idleOlderThanSeconds}s terminated (at most ${input.maxTerminate}); max_connections raised only with approval and applied by a restart of ${namespace}/${deployment}.`,
    prevention: 'Pool connections (PgBouncer or smaller per-process pools), set idle_session_timeout / idle_in_transaction_session_timeout, and alert at 80% of max_connections.',
  });
  return {
    ...result,
    before: { total: stats.total, maxConnections: stats.maxConnections, usage: stats.usage },
    after: after && { total: after.total, maxConnections: after.maxConnections, usage: after.usage },
  };
}
