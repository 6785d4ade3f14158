import type { Pool, PoolClient } from 'pg';
import { explainability } from '../common/explainable-statement';
import { redactStatementSecrets } from '../common/statement-redaction';
import { errorText } from '../common/failures';
import { invalidInput } from './errors';
import { quoteIdentifier } from './guards';
import { awaitOtherBuild } from './postgres-maintenance';
import { assertConnectedTo, connectedDatabaseAllowed, intOption, longStatement, num, quoteCatalogName, requirePool, withClient, type PostgresDeps } from './postgres-common';
import { readSlowestStatements, shownStatement, type SlowStatement, type StatementTimingColumns } from './postgres-statistics';

/** 性能优化 → 数据库优化: slow statements with their plans, bloat estimates, REINDEX CONCURRENTLY and ANALYZE. */

export interface ExplainedStatement extends SlowStatement {
  /** EXPLAIN's lines (a generic plan: `$n` stay parameters), or null when the statement is shown as text only. */
  plan: string[] | null;
  /** Why there is no plan (not a plain SELECT, EXPLAIN refused, ...); absent with a plan. */
  textOnly?: string;
}

export interface ExplainedStatements {
  database: string;
  timingColumns: StatementTimingColumns;
  statements: ExplainedStatement[];
}

export interface BloatEstimate {
  schema: string;
  table: string;
  /** The index, for an index estimate. */
  index?: string;
  /** Index OID: a rebuild (REINDEX CONCURRENTLY) gives the name a new one, so a retried rebuild sees it is done. */
  oid?: number;
  method?: string;
  bytes: number;
  /** Estimated bytes beyond what the live rows need (null: no estimate, see `note`). */
  bloatBytes: number | null;
  /** bloatBytes / bytes. */
  bloatRatio: number | null;
  note?: string;
  /** Whether the worker's role may rebuild it (it is a member of the table's owner). */
  maintainable?: boolean;
}

export interface BloatEstimates {
  database: string;
  tables: BloatEstimate[];
  indexes: BloatEstimate[];
}

export interface ReindexedIndex {
  schema: string;
  index: string;
  action: 'reindexed' | 'rebuilt by an earlier attempt' | 'gone';
  bytesBefore: number;
  bytesAfter: number | null;
  /** INVALID leftovers of an interrupted REINDEX CONCURRENTLY of it (`<index>_ccnew`, `_ccold`), dropped first. */
  droppedLeftovers: string[];
}

/** Lines of a plan kept per statement (a plan of a large join can run to hundreds). */
const planLineLimit = 40;
const explainName = 'runbook_explain';

/**
 * EXPLAIN (never ANALYZE: nothing runs) of one statement already judged a plain SELECT, inside
 * BEGIN READ ONLY with a local statement timeout, then ROLLBACK. pg_stat_statements' texts have
 * `$n` for their constants: EXPLAIN (GENERIC_PLAN) would plan them, but it is PostgreSQL 16+ and
 * the servers here run 15, so the text is PREPAREd (parameter types inferred from the statement)
 * and `EXPLAIN EXECUTE` with NULLs is run under plan_cache_mode = force_generic_plan: the plan
 * shown is the generic one, never specialised to the NULLs. The same on every version from 12 on.
 * PREPARE goes over the extended protocol, which refuses a second statement in one text.
 */
async function explainReadOnly(client: PoolClient, text: string, timeoutMs: number): Promise<string[]> {
  await client.query('BEGIN READ ONLY');
  let prepared = false;
  try {
    await client.query(`SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true), set_config('plan_cache_mode', 'force_generic_plan', true)`, [`${timeoutMs}ms`]);
    // queryMode (pg 8.23) is not in @types/pg yet: passed as a variable, not a literal.
    const prepare = { text: `PREPARE ${explainName} AS ${text}`, queryMode: 'extended' };
    await client.query(prepare);
    prepared = true;
    const params = await client.query<{ n: number }>(`SELECT coalesce(cardinality(parameter_types), 0) AS n FROM pg_prepared_statements WHERE name = $1`, [explainName]);
    const n = params.rows[0]?.n ?? 0;
    const args = n > 0 ? `(${Array.from({ length: n }, () => 'NULL').join(', ')})` : '';
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (FORMAT TEXT, COSTS TRUE) EXECUTE ${explainName}${args}`);
    return rows.map((r) => r['QUERY PLAN']);
  } finally {
    await client.query('ROLLBACK');
    // A prepared statement outlives the transaction; the pooled session must not keep it.
    if (prepared) await client.query(`DEALLOCATE ${explainName}`);
  }
}

/** btree's fill factor default, its page header and special space. */
const btree = { fillfactor: 90, pageOverhead: 24 + 16, tupleHeader: 8 };
const heap = { pageOverhead: 24, tupleHeader: 24 };
const maxAlign = (n: number) => Math.ceil(n / 8) * 8;
const itemPointer = 4;

/**
 * The pages live rows need, estimated from pg_stats' average widths as the well-known bloat
 * queries (ioguix) do: rows per page from the aligned tuple size and the page's usable space at
 * the fill factor. Null without statistics (never analyzed).
 */
export function estimatedPages(rows: number, dataWidth: number, blockSize: number, kind: 'heap' | 'btree', fillfactor: number): number {
  const layout = kind === 'heap' ? heap : btree;
  const tuple = layout.tupleHeader + maxAlign(dataWidth) + itemPointer;
  const perPage = Math.max(1, Math.floor(((blockSize - layout.pageOverhead) * fillfactor) / 100 / tuple));
  // btree's metapage.
  return Math.ceil(rows / perPage) + (kind === 'btree' ? 1 : 0);
}

function bloatOf(bytes: number, blockSize: number, estimated: number): { bloatBytes: number; bloatRatio: number } {
  const bloatBytes = Math.max(0, bytes - estimated * blockSize);
  return { bloatBytes, bloatRatio: bytes > 0 ? Math.round((bloatBytes / bytes) * 1000) / 1000 : 0 };
}

const fillfactorOf = (options: string[] | null, fallback: number) => {
  const setting = options?.find((o) => o.startsWith('fillfactor='));
  return setting ? Number(setting.slice('fillfactor='.length)) : fallback;
};

type RelationRow = {
  schema: string;
  table: string;
  index: string | null;
  oid: string;
  method: string | null;
  bytes: string;
  reltuples: number;
  reloptions: string[] | null;
  data_width: number | null;
  stats_cols: string;
  key_cols: string;
  expression: boolean | null;
  partial: boolean | null;
  valid: boolean | null;
  maintainable: boolean;
};

const userRelations = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`;

/** Tables, then their indexes, with what the estimate needs; widths from pg_stats of the table's columns. */
const relationsSql = `
SELECT n.nspname AS schema, t.relname AS table, NULL AS index, t.oid::bigint AS oid, NULL AS method, pg_relation_size(t.oid) AS bytes,
       t.reltuples::float8 AS reltuples, t.reloptions,
       (SELECT sum(s.avg_width * (1 - s.null_frac)) FROM pg_stats AS s WHERE s.schemaname = n.nspname AND s.tablename = t.relname)::float8 AS data_width,
       (SELECT count(*) FROM pg_stats AS s WHERE s.schemaname = n.nspname AND s.tablename = t.relname) AS stats_cols,
       (SELECT count(*) FROM pg_attribute AS a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped) AS key_cols,
       NULL::boolean AS expression, NULL::boolean AS partial, NULL::boolean AS valid, pg_has_role(current_user, t.relowner, 'USAGE') AS maintainable
  FROM pg_class AS t JOIN pg_namespace AS n ON n.oid = t.relnamespace
 WHERE t.relkind IN ('r', 'm') AND ${userRelations}
UNION ALL
SELECT n.nspname, t.relname, c.relname, c.oid::bigint, am.amname, pg_relation_size(c.oid),
       t.reltuples::float8, c.reloptions,
       (SELECT sum(s.avg_width * (1 - s.null_frac)) FROM pg_attribute AS a JOIN pg_stats AS s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
         WHERE a.attrelid = t.oid AND a.attnum = ANY (i.indkey::int2[]))::float8,
       (SELECT count(*) FROM pg_attribute AS a JOIN pg_stats AS s ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
         WHERE a.attrelid = t.oid AND a.attnum = ANY (i.indkey::int2[])),
       i.indnatts, 0 = ANY (i.indkey::int2[]), i.indpred IS NOT NULL, i.indisvalid AND i.indisready, pg_has_role(current_user, t.relowner, 'USAGE')
  FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_class AS t ON t.oid = i.indrelid
  JOIN pg_namespace AS n ON n.oid = t.relnamespace JOIN pg_am AS am ON am.oid = c.relam
 WHERE t.relkind IN ('r', 'm') AND ${userRelations}`;

function estimate(row: RelationRow, blockSize: number): BloatEstimate {
  const bytes = num(row.bytes);
  const base = { schema: row.schema, table: row.table, bytes };
  const noEstimate = (note: string) => ({ bloatBytes: null, bloatRatio: null, note });
  const statistics = row.reltuples >= 0 && num(row.stats_cols) === num(row.key_cols);
  if (row.index === null) {
    if (!statistics) return { ...base, ...noEstimate('no statistics (ANALYZE it)') };
    return { ...base, ...bloatOf(bytes, blockSize, estimatedPages(row.reltuples, row.data_width ?? 0, blockSize, 'heap', fillfactorOf(row.reloptions, 100))) };
  }
  const index = { ...base, index: row.index, oid: num(row.oid), method: row.method ?? '', maintainable: row.maintainable };
  if (row.method !== 'btree') return { ...index, ...noEstimate(`no estimate for ${row.method} indexes`) };
  if (row.expression || row.partial) return { ...index, ...noEstimate('no estimate for an expression or partial index') };
  if (!row.valid) return { ...index, ...noEstimate('INVALID (a failed concurrent build)') };
  if (!statistics) return { ...index, ...noEstimate('no statistics for its columns (ANALYZE the table)') };
  return { ...index, ...bloatOf(bytes, blockSize, estimatedPages(row.reltuples, row.data_width ?? 0, blockSize, 'btree', fillfactorOf(row.reloptions, btree.fillfactor))) };
}

/** The index `schema.name` now (its OID and size), or null when there is none. */
async function indexNow(client: PoolClient, schema: string, name: string): Promise<{ oid: number; table: string; bytes: number; valid: boolean; maintainable: boolean } | null> {
  const { rows } = await client.query<{ oid: string; table: string; bytes: string; valid: boolean; maintainable: boolean }>(
    `SELECT c.oid::bigint AS oid, t.relname AS table, pg_relation_size(c.oid) AS bytes, i.indisvalid AND i.indisready AS valid,
            pg_has_role(current_user, t.relowner, 'USAGE') AS maintainable
       FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_class AS t ON t.oid = i.indrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  const row = rows[0];
  return row ? { oid: num(row.oid), table: row.table, bytes: num(row.bytes), valid: row.valid, maintainable: row.maintainable } : null;
}

/**
 * Drops (CONCURRENTLY) the INVALID `<index>_ccnew` / `_ccold` indexes an interrupted REINDEX
 * CONCURRENTLY of it left on its table, once no session builds them; returns their names.
 */
async function dropReindexLeftovers(pool: Pool, client: PoolClient, schema: string, index: string, table: string): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND i.indrelid = to_regclass(quote_ident($1) || '.' || quote_ident($3)) AND NOT i.indisvalid
        AND left(c.relname, length($2)) = $2 AND substr(c.relname, length($2) + 1) ~ '^_cc(new|old)[0-9]*$'`,
    [schema, index, table],
  );
  for (const { name } of rows) {
    await awaitOtherBuild(client, table, name);
    await longStatement(pool, client, `DROP INDEX CONCURRENTLY IF EXISTS ${quoteCatalogName(schema)}.${quoteCatalogName(name)}`, { index: name, step: 'drop leftover' });
  }
  return rows.map((r) => r.name);
}

type IndexToRebuild = { schema: string; index: string; oid: number };

function indexesOption(value: unknown): IndexToRebuild[] {
  if (!Array.isArray(value) || value.length > 20) throw invalidInput('indexes must be a list of at most 20 { schema, index, oid }');
  return value.map((v: Partial<IndexToRebuild>) => {
    quoteIdentifier(v?.schema ?? '', 'schema');
    quoteIdentifier(v?.index ?? '', 'index');
    if (typeof v.oid !== 'number' || !Number.isInteger(v.oid) || v.oid <= 0) throw invalidInput(`index ${v.index}: oid must be a positive whole number`);
    return { schema: v.schema!, index: v.index!, oid: v.oid };
  });
}

export function createPostgresOptimizationActivities({ pool, allowedDatabases }: PostgresDeps) {
  return {
    /**
     * The N slowest statements, each with its plan when it is a single plain SELECT (EXPLAIN,
     * never ANALYZE, in a read-only transaction with a statement timeout, rolled back), else as
     * text with the reason. Texts and plans leave redacted (passwords, connection strings).
     */
    async explainSlowStatements(input: { database?: string; limit?: number; timeoutMs?: number } = {}): Promise<ExplainedStatements> {
      const db = requirePool(pool);
      const limit = intOption(input?.limit, 'limit', 10, 1, 50);
      const timeoutMs = intOption(input?.timeoutMs, 'timeoutMs', 2000, 100, 30_000);
      return withClient(db, 'explain slow statements', async (client) => {
        const database = await connectedDatabaseAllowed(client, allowedDatabases);
        assertConnectedTo(database, input?.database);
        const slowest = await readSlowestStatements(client, limit);
        const statements: ExplainedStatement[] = [];
        for (const s of slowest.statements) {
          const shown = { ...s, query: shownStatement(s.query) };
          const verdict = explainability(s.query);
          if (!verdict.explainable) {
            statements.push({ ...shown, plan: null, textOnly: verdict.reason });
            continue;
          }
          try {
            const lines = await explainReadOnly(client, s.query, timeoutMs);
            const plan = lines.slice(0, planLineLimit).map(redactStatementSecrets);
            if (lines.length > planLineLimit) plan.push(`… ${lines.length - planLineLimit} more lines`);
            statements.push({ ...shown, plan });
          } catch (err) {
            statements.push({ ...shown, plan: null, textOnly: `EXPLAIN refused: ${redactStatementSecrets(errorText(err))}` });
          }
        }
        return { database, timingColumns: slowest.timingColumns, statements };
      });
    },

    /**
     * Table and btree index bloat of the connected database, estimated from pg_stats (no
     * extension): bytes beyond what the live rows need at the fill factor. Largest first, at most
     * `limit` of each.
     */
    async bloatEstimates(input: { database?: string; limit?: number } = {}): Promise<BloatEstimates> {
      const db = requirePool(pool);
      const limit = intOption(input?.limit, 'limit', 50, 1, 500);
      return withClient(db, 'bloat estimates', async (client) => {
        const database = await connectedDatabaseAllowed(client, allowedDatabases);
        assertConnectedTo(database, input?.database);
        const blockSize = Number((await client.query<{ bs: string }>(`SELECT current_setting('block_size') AS bs`)).rows[0]!.bs);
        const { rows } = await client.query<RelationRow>(relationsSql);
        const all = rows.map((r) => estimate(r, blockSize));
        const bySize = (a: BloatEstimate, b: BloatEstimate) => (b.bloatBytes ?? -1) - (a.bloatBytes ?? -1) || b.bytes - a.bytes;
        return {
          database,
          tables: all
            .filter((e) => e.index === undefined)
            .sort(bySize)
            .slice(0, limit),
          indexes: all
            .filter((e) => e.index !== undefined)
            .sort(bySize)
            .slice(0, limit),
        };
      });
    },

    /**
     * REINDEX INDEX CONCURRENTLY of each index, by the OID it had when planned: a name whose OID
     * changed was rebuilt already (by an earlier attempt of this activity), so a retry never builds
     * twice; a rebuild another backend runs now is waited for first. Only indexes of tables the
     * worker's role may maintain, and valid ones. INVALID leftovers of an interrupted rebuild
     * (`<index>_ccnew`) are dropped first.
     */
    async reindexIndexes(input: { database?: string; indexes?: IndexToRebuild[] } = {}): Promise<{ database: string; indexes: ReindexedIndex[] }> {
      const db = requirePool(pool);
      const wanted = indexesOption(input?.indexes);
      return withClient(db, 'REINDEX CONCURRENTLY', async (client) => {
        const database = await connectedDatabaseAllowed(client, allowedDatabases);
        assertConnectedTo(database, input?.database);
        const done: ReindexedIndex[] = [];
        for (const want of wanted) {
          let now = await indexNow(client, want.schema, want.index);
          if (now && (await awaitOtherBuild(client, now.table, want.index))) now = await indexNow(client, want.schema, want.index);
          if (!now) {
            done.push({ schema: want.schema, index: want.index, action: 'gone', bytesBefore: 0, bytesAfter: null, droppedLeftovers: [] });
            continue;
          }
          const droppedLeftovers = await dropReindexLeftovers(db, client, want.schema, want.index, now.table);
          if (now.oid !== want.oid) {
            done.push({ schema: want.schema, index: want.index, action: 'rebuilt by an earlier attempt', bytesBefore: now.bytes, bytesAfter: now.bytes, droppedLeftovers });
            continue;
          }
          if (!now.maintainable) throw invalidInput(`index ${want.schema}.${want.index}: the worker's role does not own its table; nothing was rebuilt after it`);
          if (!now.valid) throw invalidInput(`index ${want.schema}.${want.index} is INVALID: drop and create it instead of REINDEX`);
          const name = `${quoteCatalogName(want.schema)}.${quoteCatalogName(want.index)}`;
          await longStatement(db, client, `REINDEX INDEX CONCURRENTLY ${name}`, { index: want.index, step: 'reindex' });
          const after = await indexNow(client, want.schema, want.index);
          done.push({ schema: want.schema, index: want.index, action: 'reindexed', bytesBefore: now.bytes, bytesAfter: after?.bytes ?? null, droppedLeftovers });
        }
        return { database, indexes: done };
      });
    },

    /** ANALYZE of each table (validated names that exist in the connected database). */
    async analyzeTables(input: { database?: string; tables?: Array<{ schema: string; table: string }> } = {}): Promise<{ database: string; analyzed: string[]; durationMs: number }> {
      const db = requirePool(pool);
      const tables = input?.tables;
      if (!Array.isArray(tables) || tables.length > 50) throw invalidInput('tables must be a list of at most 50 { schema, table }');
      const targets = tables.map((t) => ({ name: `${t?.schema}.${t?.table}`, sql: `${quoteIdentifier(t?.schema ?? '', 'schema')}.${quoteIdentifier(t?.table ?? '', 'table')}`, ...t }));
      return withClient(db, 'ANALYZE', async (client) => {
        const database = await connectedDatabaseAllowed(client, allowedDatabases);
        assertConnectedTo(database, input?.database);
        const started = Date.now();
        const analyzed: string[] = [];
        for (const t of targets) {
          const found = await client.query(`SELECT 1 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm')`, [
            t.schema,
            t.table,
          ]);
          if (found.rowCount === 0) continue;
          await longStatement(db, client, `ANALYZE ${t.sql}`, { analyzing: t.name });
          analyzed.push(t.name);
        }
        return { database, analyzed, durationMs: Date.now() - started };
      });
    },
  };
}
