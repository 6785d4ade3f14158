import { heartbeat, sleep } from '@temporalio/activity';
import { Client } from 'pg';
import { failure, refused } from './errors';
import { assertDatabaseAllowed } from './guards';
import { errorText } from '../common/failures';
import { boolOption, connectedDatabaseAllowed, databaseName, intOption, num, requirePool, withClient, type PostgresDeps } from './postgres-common';

export interface ConnectionStats {
  maxConnections: number;
  /** Client backends other than ours. */
  total: number;
  /** total / maxConnections, 0..1. */
  usage: number;
  byState: Record<string, number>;
  /** The largest groups first, at most `topApplications`. */
  byApplication: Array<{ applicationName: string; count: number }>;
  oldestIdleSeconds: number | null;
  database: string | null;
}

export interface TerminateIdleResult {
  database: string;
  olderThanSeconds: number;
  dryRun: boolean;
  /** Idle sessions that matched, before the cap. */
  matched: number;
  /** Terminated (or, in a dry run, would be), oldest first. */
  pids: number[];
  capped: boolean;
  /** Sessions of this application name are never touched: it is ours. */
  protectedApplicationName: string;
  changed: boolean;
}

export interface MaxConnectionsResult {
  dryRun: boolean;
  requested: number;
  before: { running: number; pending: number | null; pendingRestart: boolean };
  after: { running: number; pending: number | null; pendingRestart: boolean };
  /** The configuration files gave (or, when pending is unknown, may give) another value than requested. */
  needsChange: boolean;
  changed: boolean;
  /** max_connections takes effect only after a restart of the server (a separate, approved step). */
  restartNeeded: boolean;
}

export interface WaitForPostgresResult {
  attempts: number;
  waitedMs: number;
  serverVersion: string;
}

/** The bounds setMaxConnections accepts; outside them is a typo, not a capacity decision. */
export const maxConnectionsRange = { min: 20, max: 5000 } as const;

export function createPostgresConnectionActivities({ pool, allowedDatabases, databaseUrl }: PostgresDeps) {
  return {
    /** Client connections vs max_connections, by state and application; our own backend is left out. */
    async connectionStats(input: { database?: string; topApplications?: number } = {}): Promise<ConnectionStats> {
      const db = requirePool(pool);
      const database = input.database === undefined ? null : databaseName(input.database);
      const top = intOption(input.topApplications, 'topApplications', 20, 1, 200);
      return withClient(db, 'read pg_stat_activity', async (client) => {
        const filter = `backend_type = 'client backend' AND pid <> pg_backend_pid() AND ($1::text IS NULL OR datname = $1)`;
        const [max, states, apps, idle] = [
          await client.query<{ v: string }>(`SELECT current_setting('max_connections') AS v`),
          await client.query<{ state: string; n: string }>(`SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM pg_stat_activity WHERE ${filter} GROUP BY 1 ORDER BY 2 DESC`, [database]),
          await client.query<{ app: string; n: string }>(`SELECT application_name AS app, count(*) AS n FROM pg_stat_activity WHERE ${filter} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2`, [database, top]),
          await client.query<{ s: string | null }>(`SELECT extract(epoch FROM now() - min(state_change)) AS s FROM pg_stat_activity WHERE ${filter} AND state = 'idle'`, [database]),
        ];
        const maxConnections = num(max.rows[0]?.v);
        const byState: Record<string, number> = {};
        for (const row of states.rows) byState[row.state] = num(row.n);
        const total = Object.values(byState).reduce((a, b) => a + b, 0);
        const oldest = idle.rows[0]?.s;
        return {
          maxConnections,
          total,
          usage: maxConnections > 0 ? Math.round((total / maxConnections) * 1000) / 1000 : 0,
          byState,
          byApplication: apps.rows.map((r) => ({ applicationName: r.app, count: num(r.n) })),
          oldestIdleSeconds: oldest === null || oldest === undefined ? null : Math.floor(Number(oldest)),
          database,
        };
      });
    },

    /**
     * pg_terminate_backend for sessions idle (state 'idle', by state_change) longer than N seconds in one
     * allowlisted database (default: the connected one), oldest first, at most `max`. Never our own backend,
     * never a session with our application_name (the worker's other pool connections).
     */
    async terminateIdleConnections(input: { olderThanSeconds: number; max: number; dryRun?: boolean; database?: string }): Promise<TerminateIdleResult> {
      const db = requirePool(pool);
      const olderThanSeconds = intOption(input?.olderThanSeconds, 'olderThanSeconds', undefined, 1, 30 * 86_400);
      const max = intOption(input?.max, 'max', undefined, 1, 10_000);
      const dryRun = boolOption(input?.dryRun, 'dryRun', false);
      const requested = input?.database === undefined ? undefined : databaseName(input.database);
      if (requested !== undefined) assertDatabaseAllowed(requested, { databases: allowedDatabases });
      return withClient(db, 'terminate idle connections', async (client) => {
        const database = requested ?? (await connectedDatabaseAllowed(client, allowedDatabases));
        const own = await client.query<{ app: string }>(`SELECT current_setting('application_name') AS app`);
        const protectedApplicationName = own.rows[0]!.app;
        const candidates = `FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND state = 'idle' AND datname = $1
            AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM current_setting('application_name')
            AND state_change < now() - make_interval(secs => $2)`;
        const matched = num((await client.query<{ n: string }>(`SELECT count(*) AS n ${candidates}`, [database, olderThanSeconds])).rows[0]?.n);
        let pids: number[];
        if (dryRun) {
          const { rows } = await client.query<{ pid: number }>(`SELECT pid ${candidates} ORDER BY state_change, pid LIMIT $3`, [database, olderThanSeconds, max]);
          pids = rows.map((r) => r.pid);
        } else {
          // Picked and terminated in one statement. pg_stat_activity is a snapshot, so a session that turned
          // active in the last milliseconds can still be picked: the same window as the manual's own statement.
          const { rows } = await client.query<{ pid: number; done: boolean }>(
            `SELECT pid, pg_terminate_backend(pid) AS done FROM (SELECT pid, state_change ${candidates} ORDER BY state_change, pid LIMIT $3) AS picked`,
            [database, olderThanSeconds, max],
          );
          pids = rows.filter((r) => r.done).map((r) => r.pid);
        }
        return { database, olderThanSeconds, dryRun, matched, pids, capped: matched > max, protectedApplicationName, changed: !dryRun && pids.length > 0 };
      });
    },

    /**
     * ALTER SYSTEM SET max_connections, then pg_reload_conf(). The running value changes only at the next
     * server restart, which this activity never does; the result says whether one is pending.
     */
    async setMaxConnections(input: { value: number; dryRun?: boolean }): Promise<MaxConnectionsResult> {
      const db = requirePool(pool);
      const value = intOption(input?.value, 'value', undefined, maxConnectionsRange.min, maxConnectionsRange.max);
      const dryRun = boolOption(input?.dryRun, 'dryRun', false);
      return withClient(db, 'set max_connections', async (client) => {
        await connectedDatabaseAllowed(client, allowedDatabases);
        const read = async () => {
          const { rows } = await client.query<{ running: string; pending_restart: boolean }>(`SELECT setting AS running, pending_restart FROM pg_settings WHERE name = 'max_connections'`);
          // What a restart would apply: the configuration files' last entry (postgresql.auto.conf is read last).
          // Its `error` reads "setting could not be applied" while a restart is pending, so it is not filtered on.
          // pg_file_settings is superuser-only unless granted; without it the pending value is unknown (null).
          const file = await client.query<{ setting: string }>(`SELECT setting FROM pg_file_settings WHERE name = 'max_connections' ORDER BY seqno DESC LIMIT 1`).catch((err: { code?: string }) => {
            if (err.code === '42501') return { rows: [] as Array<{ setting: string }> };
            throw err;
          });
          return {
            running: num(rows[0]?.running),
            pending: file.rows[0] ? num(file.rows[0].setting) : null,
            pendingRestart: rows[0]?.pending_restart === true,
          };
        };
        const before = await read();
        const effectiveAfterRestart = before.pending ?? before.running;
        const needsChange = effectiveAfterRestart !== value;
        if (dryRun || !needsChange) {
          return { dryRun, requested: value, before, after: before, needsChange, changed: false, restartNeeded: (needsChange ? value : effectiveAfterRestart) !== before.running };
        }
        // ALTER SYSTEM takes no parameters; value is a validated integer, never text from input.
        await client.query(`ALTER SYSTEM SET max_connections = ${value}`);
        await client.query('SELECT pg_reload_conf()');
        // The reload is asynchronous: wait (briefly) until this backend has re-read the files.
        let after = await read();
        const deadline = Date.now() + 5000;
        while (after.pendingRestart !== (value !== after.running) && Date.now() < deadline) {
          await sleep(100);
          after = await read();
        }
        return { dryRun, requested: value, before, after, needsChange, changed: true, restartNeeded: value !== after.running };
      });
    },

    /** Polls until a new connection answers, heartbeating each attempt; a timeout is a Transient failure. */
    async waitForPostgres(input: { timeoutSeconds: number; intervalMs?: number }): Promise<WaitForPostgresResult> {
      const timeoutSeconds = intOption(input?.timeoutSeconds, 'timeoutSeconds', undefined, 1, 3600);
      const intervalMs = intOption(input?.intervalMs, 'intervalMs', 1000, 50, 60_000);
      if (!databaseUrl && !pool) throw refused('PostgreSQL is not configured (no DATABASE_URL)');
      const started = Date.now();
      const deadline = started + timeoutSeconds * 1000;
      let attempts = 0;
      let lastError = '';
      for (;;) {
        attempts++;
        try {
          const serverVersion = await probe(databaseUrl, pool, Math.max(1000, Math.min(5000, deadline - Date.now())));
          heartbeat({ attempts, ok: true });
          return { attempts, waitedMs: Date.now() - started, serverVersion };
        } catch (err) {
          lastError = errorText(err);
          heartbeat({ attempts, lastError });
        }
        if (Date.now() + intervalMs > deadline) {
          throw failure('Transient', `PostgreSQL did not accept connections within ${timeoutSeconds} s (${attempts} attempts; last error: ${lastError})`);
        }
        await sleep(intervalMs); // rejects when the activity is cancelled
      }
    },
  };
}

/** One connection attempt on a fresh connection (a pooled one could be stale or hide a restart). */
async function probe(databaseUrl: string | undefined, pool: PostgresDeps['pool'], timeoutMs: number): Promise<string> {
  if (!databaseUrl) {
    const { rows } = await pool!.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
    return rows[0]!.v;
  }
  const client = new Client({ connectionString: databaseUrl, connectionTimeoutMillis: timeoutMs, application_name: 'runbook-wait-for-postgres' });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
    return rows[0]!.v;
  } finally {
    await client.end().catch(() => undefined);
  }
}
