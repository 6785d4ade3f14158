import type { S3Client } from '@aws-sdk/client-s3';
import { Context, heartbeat } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type { Pool, PoolClient } from 'pg';
import { classifyError, invalidInput, refused } from './errors';
import { assertDatabaseAllowed } from './guards';

/** Predefined roles whose members read or write server files, run programs on the server or read every table. */
export const serverAccessRoles = ['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files', 'pg_read_all_data', 'pg_write_all_data'];

export interface PostgresDeps {
  /** Absent when no database is configured. */
  pool?: Pool;
  allowedDatabases: string[];
  /**
   * The URL the pool was built from: waitForPostgres opens fresh connections with it, and
   * restoreDumpIntoScratchDatabase does not use it (see restoreDrillUrl).
   */
  databaseUrl?: string;
  /** The restore drill's own role (postgres.restoreDrillUrl): it owns the scratch database and runs the dump's SQL; never the worker's role. */
  restoreDrillUrl?: string;
  /** The backup bucket; dumps are read from keys under backupPrefix (default `database/`). */
  s3?: { client: S3Client; bucket: string; backupPrefix?: string };
}

export function requirePool(pool: Pool | undefined): Pool {
  if (!pool) throw refused('PostgreSQL is not configured (no DATABASE_URL)');
  return pool;
}

/** Like `classified`, but an activity cancellation passes through unchanged (the worker reports it as cancelled, not failed). */
export async function classifiedPg<T>(action: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof CancelledFailure) throw err;
    throw classifyError(err, { action, system: 'PostgreSQL' });
  }
}

/** Runs fn on one pooled connection (so pg_backend_pid(), settings and transactions refer to one backend). */
export async function withClient<T>(pool: Pool, action: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await classifiedPg(`${action}: connect`, () => pool.connect());
  try {
    return await classifiedPg(action, () => fn(client));
  } finally {
    client.release();
  }
}

/** The database the pool is connected to; mutating activities act only there, and only when it is allowlisted. */
export async function connectedDatabaseAllowed(client: PoolClient, allowedDatabases: string[]): Promise<string> {
  const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
  const database = rows[0]!.db;
  assertDatabaseAllowed(database, { databases: allowedDatabases });
  return database;
}

/**
 * A runbook names the database it acts on; the pool reaches one (DATABASE_URL). A name that is not
 * the connected one is refused, so a run never acts on a database it did not name.
 */
export function assertConnectedTo(connected: string, named: unknown): void {
  if (named === undefined) return;
  const name = databaseName(named);
  if (name !== connected) throw refused(`database ${name} is not the one the worker is connected to (${connected}); nothing was changed`);
}

/** An integer option: absent means the default (required when there is none); else a whole number in [min, max]. */
export function intOption(value: unknown, name: string, fallback: number | undefined, min: number, max: number): number {
  if (value === undefined || value === null) {
    if (fallback === undefined) throw invalidInput(`${name} is required (a whole number from ${min} to ${max})`);
    return fallback;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidInput(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function boolOption(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') throw invalidInput(`${name} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** Database names as PostgreSQL stores them for unquoted identifiers (what the allowlists hold). */
const databaseNamePattern = /^[a-z_][a-z0-9_$]{0,62}$/;

export function databaseName(value: unknown, name = 'database'): string {
  if (typeof value !== 'string' || !databaseNamePattern.test(value)) {
    throw invalidInput(`${name} must be a database name (lowercase letters, digits, underscores, at most 63 characters), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Quotes a name read from the system catalogs (not from input), e.g. a table found in pg_class. */
export function quoteCatalogName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** bigint / numeric columns arrive as strings from pg. */
export function num(value: unknown): number {
  return value === null || value === undefined ? 0 : Number(value);
}

/**
 * A statement that may run long (VACUUM, CREATE INDEX CONCURRENTLY): heartbeats every few seconds while it
 * runs, and when the activity is cancelled asks the server to cancel it (pg_cancel_backend from another
 * pooled connection), then throws the cancellation.
 */
export async function longStatement(pool: Pool, client: PoolClient, sql: string, details: Record<string, unknown>, heartbeatMs = 2000): Promise<void> {
  const context = Context.current();
  const signal = context.cancellationSignal;
  if (signal.aborted) await context.cancelled;
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const onAbort = () => void pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  signal.addEventListener('abort', onAbort);
  heartbeat(details);
  const timer = setInterval(() => heartbeat(details), heartbeatMs);
  try {
    await client.query(sql);
  } catch (err) {
    if (signal.aborted) await context.cancelled;
    throw err;
  } finally {
    clearInterval(timer);
    signal.removeEventListener('abort', onAbort);
  }
}
