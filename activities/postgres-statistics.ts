import type { PoolClient } from 'pg';
import { failure } from './errors';
import { redactStatementSecrets } from '../common/statement-redaction';
import { databaseName, intOption, num, quoteCatalogName, requirePool, withClient, type PostgresDeps } from './postgres-common';

export interface DatabaseSize {
  database: string;
  bytes: number;
  pretty: string;
}

export interface TableSize {
  schema: string;
  table: string;
  totalBytes: number;
  pretty: string;
}

export interface SlowStatement {
  /** At most statementTextLimit characters (then an ellipsis). */
  query: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  maxMs: number;
}

export interface SlowestStatements {
  database: string;
  /** Which pg_stat_statements columns were read: PostgreSQL 13+ `*_exec_time`, older `*_time`. */
  timingColumns: StatementTimingColumns;
  statements: SlowStatement[];
}

export interface StatementTimingColumns {
  total: string;
  mean: string;
  max: string;
}

export const statementTextLimit = 500;
/** How much of a statement is read: redaction needs the text around a credential, so it happens before the cut to statementTextLimit. */
const statementReadLimit = 20_000;

/** What leaves the activity: credentials redacted first, then cut at statementTextLimit characters. */
export function shownStatement(text: string): string {
  const redacted = redactStatementSecrets(text);
  return redacted.length > statementTextLimit ? `${redacted.slice(0, statementTextLimit)}…` : redacted;
}

/**
 * Chooses the timing columns from the columns the installed pg_stat_statements view has:
 * 13 and newer split planning and execution (total_exec_time, mean_exec_time, max_exec_time),
 * older versions have total_time, mean_time, max_time. Undefined when neither set is complete.
 */
export function chooseStatementTimingColumns(columns: readonly string[]): StatementTimingColumns | undefined {
  const has = new Set(columns);
  for (const suffix of ['_exec_time', '_time']) {
    const choice = { total: `total${suffix}`, mean: `mean${suffix}`, max: `max${suffix}` };
    if (has.has(choice.total) && has.has(choice.mean) && has.has(choice.max)) return choice;
  }
  return undefined;
}

/** The slowest-statements query for the chosen columns; $1 is the row limit, $2 how many characters of a text to read. Only identifiers from the catalog. */
export function slowestStatementsSql(schema: string, columns: StatementTimingColumns): string {
  const q = quoteCatalogName;
  return `SELECT CASE WHEN length(s.query) > $2 THEN left(s.query, $2) || '…' ELSE s.query END AS query,
       s.calls, s.${q(columns.total)} AS total_ms, s.${q(columns.mean)} AS mean_ms, s.${q(columns.max)} AS max_ms
  FROM ${q(schema)}.pg_stat_statements AS s
  JOIN pg_database AS d ON d.oid = s.dbid
 WHERE d.datname = current_database()
 ORDER BY s.${q(columns.mean)} DESC
 LIMIT $1`;
}

const round = (ms: unknown) => Math.round(num(ms) * 1000) / 1000;

/**
 * The slowest statements of the connected database with their texts as stored (up to
 * statementReadLimit characters, then an ellipsis): never to leave an activity unredacted
 * (shownStatement).
 */
export async function readSlowestStatements(client: PoolClient, limit: number): Promise<SlowestStatements> {
  const ext = await client.query<{ schema: string; db: string }>(
    `SELECT n.nspname AS schema, current_database() AS db FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
      WHERE e.extname = 'pg_stat_statements'`,
  );
  if (!ext.rows[0]) throw failure('NotFound', 'pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)');
  const { schema, db: database } = ext.rows[0];
  const cols = await client.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'pg_stat_statements'`, [schema]);
  const timingColumns = chooseStatementTimingColumns(cols.rows.map((r) => r.column_name));
  if (!timingColumns) throw failure('NotFound', `pg_stat_statements in schema ${schema} has neither *_exec_time nor *_time columns`);
  const { rows } = await client.query<{ query: string; calls: string; total_ms: number; mean_ms: number; max_ms: number }>(slowestStatementsSql(schema, timingColumns), [limit, statementReadLimit]);
  return {
    database,
    timingColumns,
    statements: rows.map((r) => ({ query: r.query, calls: num(r.calls), totalMs: round(r.total_ms), meanMs: round(r.mean_ms), maxMs: round(r.max_ms) })),
  };
}

export function createPostgresStatisticsActivities({ pool }: PostgresDeps) {
  return {
    async databaseSize(input: { database: string }): Promise<DatabaseSize> {
      const db = requirePool(pool);
      const database = databaseName(input?.database);
      return withClient(db, `size of database ${database}`, async (client) => {
        const { rows } = await client.query<{ bytes: string; pretty: string }>('SELECT pg_database_size($1) AS bytes, pg_size_pretty(pg_database_size($1)) AS pretty', [database]);
        return { database, bytes: num(rows[0]?.bytes), pretty: rows[0]!.pretty };
      });
    },

    /** Tables (with their indexes and TOAST) of the connected database, largest first. */
    async largestTables(input: { limit?: number } = {}): Promise<{ database: string; tables: TableSize[] }> {
      const db = requirePool(pool);
      const limit = intOption(input?.limit, 'limit', 10, 1, 100);
      return withClient(db, 'largest tables', async (client) => {
        const { rows } = await client.query<{ schema: string; table: string; bytes: string; pretty: string; db: string }>(
          `SELECT n.nspname AS schema, c.relname AS table, pg_total_relation_size(c.oid) AS bytes,
                  pg_size_pretty(pg_total_relation_size(c.oid)) AS pretty, current_database() AS db
             FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
            ORDER BY pg_total_relation_size(c.oid) DESC, 1, 2
            LIMIT $1`,
          [limit],
        );
        const database = rows[0]?.db ?? (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
        return { database, tables: rows.map((r) => ({ schema: r.schema, table: r.table, totalBytes: num(r.bytes), pretty: r.pretty })) };
      });
    },

    /** pg_stat_statements of the connected database by mean time, whichever column names the installed version has. */
    async slowestStatements(input: { limit?: number } = {}): Promise<SlowestStatements> {
      const db = requirePool(pool);
      const limit = intOption(input?.limit, 'limit', 10, 1, 100);
      return withClient(db, 'slowest statements', async (client) => {
        const raw = await readSlowestStatements(client, limit);
        return { ...raw, statements: raw.statements.map((s) => ({ ...s, query: shownStatement(s.query) })) };
      });
    },
  };
}
