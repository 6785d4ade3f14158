import { Context, heartbeat } from '@temporalio/activity';
import type { PoolClient } from 'pg';
import { failure } from './errors';
import { quoteIdentifier } from './guards';
import { assertConnectedTo, boolOption, connectedDatabaseAllowed, intOption, longStatement, num, quoteCatalogName, requirePool, withClient, type PostgresDeps } from './postgres-common';

export interface DeleteExpiredSessionsResult {
  database: string;
  dryRun: boolean;
  olderThanDays: number;
  /** Rows with expires_at before this instant were (or would be) deleted. */
  cutoff: string;
  /** Matching rows before the run. */
  before: number;
  /** Deleted; in a dry run, what would be (capped by maxRows). */
  deleted: number;
  /** Matching rows left after the run (in a dry run: unchanged). */
  after: number;
  batches: number;
  capped: boolean;
  changed: boolean;
}

export interface VacuumTableStats {
  schema: string;
  table: string;
  deadTuplesBefore: number;
  deadTuplesAfter: number;
  vacuumCountBefore: number;
  vacuumCountAfter: number;
  analyzeCountBefore: number;
  analyzeCountAfter: number;
}

export interface VacuumAnalyzeResult {
  database: string;
  dryRun: boolean;
  /** The table vacuumed, or null for the whole database. */
  target: string | null;
  durationMs: number;
  /** User tables (most dead tuples first, at most 50) with statistics before and after. */
  tables: VacuumTableStats[];
}

export type IndexState = 'missing' | 'valid' | 'invalid' | 'table missing';

export interface RecommendedIndexReport {
  name: string;
  table: string;
  before: IndexState;
  after: IndexState;
  /** Its first column (the GIN's expression): a statement naming the table and this may be served by it. */
  leading: string;
  action: 'none' | 'created' | 'rebuilt' | 'would create' | 'would rebuild' | 'skipped: table missing' | 'built by an earlier attempt';
  definition: string | null;
  /** pg_relation_size before and after (null while the index does not exist). */
  bytesBefore: number | null;
  bytesAfter: number | null;
}

export interface EnsureIndexesResult {
  database: string;
  dryRun: boolean;
  indexes: RecommendedIndexReport[];
  changed: boolean;
}

/**
 * The manual's indexes (数据库优化 → 创建索引), all in schema public. Constant SQL, no input in it.
 * `leading`: the word a statement that the index may serve names (its first column, or the GIN's expression).
 */
export const recommendedIndexes: ReadonlyArray<{ name: string; table: string; leading: string; create: string }> = [
  {
    name: 'idx_projects_user_created',
    table: 'projects',
    leading: 'user_id',
    create: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_projects_user_created ON public.projects (user_id, created_at DESC)',
  },
  { name: 'idx_storyboards_project', table: 'storyboards', leading: 'project_id', create: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_storyboards_project ON public.storyboards (project_id)' },
  { name: 'idx_characters_user', table: 'characters', leading: 'user_id', create: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_characters_user ON public.characters (user_id)' },
  {
    name: 'idx_projects_name_gin',
    table: 'projects',
    leading: 'to_tsvector',
    create: `CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_projects_name_gin ON public.projects USING gin (to_tsvector('english', name))`,
  },
];

/** Another backend building (or rebuilding) the index `public.<name>` now, from pg_stat_progress_create_index; null when none. */
export async function buildInProgress(client: PoolClient, table: string, name: string): Promise<{ pid: number; phase: string; command: string } | null> {
  const { rows } = await client.query<{ pid: number; phase: string; command: string }>(
    `SELECT p.pid, p.phase, p.command FROM pg_stat_progress_create_index AS p
      WHERE p.pid <> pg_backend_pid() AND p.datname = current_database()
        AND (p.index_relid = to_regclass('public.' || quote_ident($2))
             OR (p.index_relid = 0 AND p.relid = to_regclass('public.' || quote_ident($1))))
      LIMIT 1`,
    [table, name],
  );
  return rows[0] ?? null;
}

/**
 * Waits (heartbeating, cancellable) until no other backend builds the index: the build of an
 * earlier attempt whose worker died goes on in its server session, and a second build of the same
 * index must not start beside it. Returns the builder waited on, if any.
 */
export async function awaitOtherBuild(client: PoolClient, table: string, name: string, pollMs = 500): Promise<{ pid: number; waitedMs: number } | null> {
  const started = Date.now();
  let seen: { pid: number } | null = null;
  for (;;) {
    const other = await buildInProgress(client, table, name);
    if (!other) return seen && { pid: seen.pid, waitedMs: Date.now() - started };
    if (!seen) Context.current().log.info('waiting for the build of the index another session runs', { index: name, pid: other.pid, phase: other.phase, command: other.command });
    seen = other;
    heartbeat({ index: name, waitingForBuildBy: other.pid, phase: other.phase });
    // Context.sleep rejects with CancelledFailure once the activity is cancelled.
    await Context.current().sleep(pollMs);
  }
}

/** Tables the weekly checklist maintains (indexes above, expired sessions deleted, VACUUM): their owner's rights are needed. */
export const maintainedTables: readonly string[] = [...new Set([...recommendedIndexes.map((index) => index.table), 'sessions'])];

async function throwIfCancelled(): Promise<void> {
  const context = Context.current();
  if (context.cancellationSignal.aborted) await context.cancelled;
}

async function userTableStats(client: PoolClient, schema: string | null, table: string | null) {
  const { rows } = await client.query<{ schema: string; table: string; dead: string; vacuums: string; analyzes: string }>(
    `SELECT schemaname AS schema, relname AS table, n_dead_tup AS dead,
            vacuum_count + autovacuum_count AS vacuums, analyze_count + autoanalyze_count AS analyzes
       FROM pg_stat_user_tables
      WHERE ($1::text IS NULL OR schemaname = $1) AND ($2::text IS NULL OR relname = $2)
      ORDER BY n_dead_tup DESC, 1, 2 LIMIT 50`,
    [schema, table],
  );
  return rows.map((r) => ({ schema: r.schema, table: r.table, dead: num(r.dead), vacuums: num(r.vacuums), analyzes: num(r.analyzes) }));
}

type IndexStateRow = { state: IndexState; definition: string | null; bytes: number | null };

async function indexStates(client: PoolClient): Promise<Map<string, IndexStateRow>> {
  const names = recommendedIndexes.map((i) => i.name);
  const tables = [...new Set(recommendedIndexes.map((i) => i.table))];
  const present = await client.query<{ name: string; valid: boolean; definition: string; bytes: string }>(
    `SELECT c.relname AS name, i.indisvalid AND i.indisready AS valid, pg_get_indexdef(c.oid) AS definition, pg_relation_size(c.oid) AS bytes
       FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])`,
    [names],
  );
  const existingTables = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[])`,
    [tables],
  );
  const haveTable = new Set(existingTables.rows.map((r) => r.name));
  const states = new Map<string, IndexStateRow>();
  for (const index of recommendedIndexes) {
    const row = present.rows.find((r) => r.name === index.name);
    if (row) states.set(index.name, { state: row.valid ? 'valid' : 'invalid', definition: row.definition, bytes: num(row.bytes) });
    else states.set(index.name, { state: haveTable.has(index.table) ? 'missing' : 'table missing', definition: null, bytes: null });
  }
  return states;
}

export function createPostgresMaintenanceActivities({ pool, allowedDatabases }: PostgresDeps) {
  return {
    /**
     * Deletes sessions that expired more than N days ago, in batches of batchSize (by ctid), at most maxRows,
     * heartbeating progress. A dry run counts. Running again deletes nothing more.
     */
    async deleteExpiredSessions(input: { olderThanDays?: number; batchSize?: number; maxRows?: number; dryRun?: boolean } = {}): Promise<DeleteExpiredSessionsResult> {
      const db = requirePool(pool);
      const olderThanDays = intOption(input?.olderThanDays, 'olderThanDays', 7, 1, 3650);
      const batchSize = intOption(input?.batchSize, 'batchSize', 1000, 1, 50_000);
      const maxRows = intOption(input?.maxRows, 'maxRows', 100_000, 1, 10_000_000);
      const dryRun = boolOption(input?.dryRun, 'dryRun', false);
      return withClient(db, 'delete expired sessions', async (client) => {
        const database = await connectedDatabaseAllowed(client, allowedDatabases);
        const table = await client.query<{ t: string | null }>(`SELECT to_regclass('public.sessions')::text AS t`);
        if (!table.rows[0]?.t) throw failure('NotFound', `table public.sessions does not exist in ${database}`);
        const cutoffRow = await client.query<{ cutoff: Date }>('SELECT now() - make_interval(days => $1) AS cutoff', [olderThanDays]);
        const cutoff = cutoffRow.rows[0]!.cutoff;
        const count = async () => num((await client.query<{ n: string }>('SELECT count(*) AS n FROM public.sessions WHERE expires_at < $1', [cutoff])).rows[0]?.n);
        const before = await count();
        const base = { database, dryRun, olderThanDays, cutoff: cutoff.toISOString(), before };
        if (dryRun) return { ...base, deleted: Math.min(before, maxRows), after: before, batches: 0, capped: before > maxRows, changed: false };
        let deleted = 0;
        let batches = 0;
        while (deleted < maxRows) {
          await throwIfCancelled();
          const limit = Math.min(batchSize, maxRows - deleted);
          const result = await client.query('DELETE FROM public.sessions WHERE ctid IN (SELECT ctid FROM public.sessions WHERE expires_at < $1 LIMIT $2)', [cutoff, limit]);
          const n = result.rowCount ?? 0;
          if (n === 0) break;
          deleted += n;
          batches++;
          heartbeat({ deleted, batches });
          if (n < limit) break;
        }
        const after = await count();
        return { ...base, deleted, after, batches, capped: after > 0 && deleted >= maxRows, changed: deleted > 0 };
      });
    },

    /** VACUUM (ANALYZE) of one table (validated, quoted) or of the whole connected database; never in a transaction. */
    async vacuumAnalyze(input: { table?: string; schema?: string; dryRun?: boolean } = {}): Promise<VacuumAnalyzeResult> {
      const db = requirePool(pool);
      const dryRun = boolOption(input?.dryRun, 'dryRun', false);
      const target =
        input?.table === undefined
          ? null
          : { schema: input.schema ?? 'public', table: input.table, sql: `${quoteIdentifier(input.schema ?? 'public', 'schema')}.${quoteIdentifier(input.table, 'table')}` };
      return withClient(db, `VACUUM ANALYZE ${target ? `${target.schema}.${target.table}` : 'database'}`, async (client) => {
        const database = await connectedDatabaseAllowed(client, allowedDatabases);
        if (target) {
          const found = await client.query(`SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm')`, [
            target.schema,
            target.table,
          ]);
          if (found.rowCount === 0) throw failure('NotFound', `table ${target.schema}.${target.table} does not exist in ${database}`);
        }
        const before = await userTableStats(client, target?.schema ?? null, target?.table ?? null);
        const started = Date.now();
        if (!dryRun) {
          await longStatement(db, client, target ? `VACUUM (ANALYZE) ${target.sql}` : 'VACUUM (ANALYZE)', {
            vacuuming: target ? `${target.schema}.${target.table}` : database,
          });
        }
        const durationMs = Date.now() - started;
        const after = new Map((await userTableStats(client, target?.schema ?? null, target?.table ?? null)).map((r) => [`${r.schema}.${r.table}`, r]));
        return {
          database,
          dryRun,
          target: target ? `${target.schema}.${target.table}` : null,
          durationMs,
          tables: before.map((b) => {
            const a = after.get(`${b.schema}.${b.table}`) ?? b;
            return {
              schema: b.schema,
              table: b.table,
              deadTuplesBefore: b.dead,
              deadTuplesAfter: a.dead,
              vacuumCountBefore: b.vacuums,
              vacuumCountAfter: a.vacuums,
              analyzeCountBefore: b.analyzes,
              analyzeCountAfter: a.analyzes,
            };
          }),
        };
      });
    },

    /**
     * The manual's indexes: reports which exist; creates missing ones with CREATE INDEX CONCURRENTLY IF NOT EXISTS;
     * an INVALID leftover of a failed concurrent build is dropped (DROP INDEX CONCURRENTLY) and built again.
     */
    async ensureRecommendedIndexes(input: { dryRun?: boolean; database?: string } = {}): Promise<EnsureIndexesResult> {
      const db = requirePool(pool);
      const dryRun = boolOption(input?.dryRun, 'dryRun', false);
      return withClient(db, 'ensure recommended indexes', async (client) => {
        const database = await connectedDatabaseAllowed(client, allowedDatabases);
        assertConnectedTo(database, input?.database);
        // A build another backend is running (an earlier attempt of this activity whose worker died) is waited for first.
        const waited = new Set<string>();
        if (!dryRun) {
          for (const index of recommendedIndexes) if (await awaitOtherBuild(client, index.table, index.name)) waited.add(index.name);
        }
        const before = await indexStates(client);
        for (const index of recommendedIndexes) {
          const state = before.get(index.name)!.state;
          if (dryRun || state === 'valid' || state === 'table missing') continue;
          // Only a name from our constant list reaches the SQL; quoted all the same.
          if (state === 'invalid') {
            await longStatement(db, client, `DROP INDEX CONCURRENTLY IF EXISTS public.${quoteCatalogName(index.name)}`, { index: index.name, step: 'drop invalid' });
          }
          await longStatement(db, client, index.create, { index: index.name, step: 'create' });
        }
        const after = dryRun ? before : await indexStates(client);
        const indexes = recommendedIndexes.map((index): RecommendedIndexReport => {
          const b = before.get(index.name)!;
          const a = after.get(index.name)!;
          const action: RecommendedIndexReport['action'] =
            b.state === 'valid'
              ? waited.has(index.name)
                ? 'built by an earlier attempt'
                : 'none'
              : b.state === 'table missing'
                ? 'skipped: table missing'
                : b.state === 'missing'
                  ? dryRun
                    ? 'would create'
                    : 'created'
                  : dryRun
                    ? 'would rebuild'
                    : 'rebuilt';
          return { name: index.name, table: index.table, leading: index.leading, before: b.state, after: a.state, action, definition: a.definition, bytesBefore: b.bytes, bytesAfter: a.bytes };
        });
        const changed = !dryRun && indexes.some((i) => i.action === 'created' || i.action === 'rebuilt' || i.action === 'built by an earlier attempt');
        return { database, dryRun, indexes, changed };
      });
    },
  };
}
