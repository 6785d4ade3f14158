import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Context, heartbeat } from '@temporalio/activity';
import { Client } from 'pg';
import { classified, failure, invalidInput, refused } from './errors';
import { quoteIdentifier } from './guards';
import { errorText, redactUrlCredentials } from '../common/failures';
import { num, quoteCatalogName, requirePool, type PostgresDeps } from './postgres-common';

export interface RestoreDrillResult {
  key: string;
  format: 'plain' | 'custom';
  bytes: number;
  scratchDatabase: string;
  /** From the first byte read to the end of verification. */
  durationMs: number;
  tables: Array<{ schema: string; table: string; rows: number }>;
  totalRows: number;
  /** At least one table restored and every expected table present. */
  verified: boolean;
  problems: string[];
  /** The scratch database was dropped at the end. */
  dropped: boolean;
}

export const scratchPrefix = 'dr_drill_';
const scratchPattern = /^dr_drill_[a-z0-9_]{1,54}$/;

/** Default scratch name: derived from the key, so a retried attempt reuses (and first drops) the same database. */
export function defaultScratchName(key: string): string {
  return `${scratchPrefix}${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

/** A scratch name must look like one (dr_drill_…) and never be a database the runbooks treat as production. */
export function assertScratchName(name: unknown, allowedDatabases: string[], connectedDatabase?: string): string {
  if (typeof name !== 'string' || !scratchPattern.test(name)) {
    throw invalidInput(`scratch database name must match ${scratchPattern} (prefix ${scratchPrefix}), got ${JSON.stringify(name)}`);
  }
  if (allowedDatabases.includes(name) || name === connectedDatabase) {
    throw refused(`scratch database ${name} is a configured database; a restore drill never writes into it`);
  }
  return name;
}

/** Connection settings for libpq tools, from the URL: everything goes through the environment, nothing secret on the command line. */
export function libpqEnvironment(databaseUrl: string, database: string): NodeJS.ProcessEnv {
  const url = new URL(databaseUrl);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: process.env.LANG,
    PGHOST: url.hostname.replace(/^\[(.*)\]$/, '$1') || url.searchParams.get('host') || 'localhost',
    PGPORT: url.port || '5432',
    PGDATABASE: database,
    PGAPPNAME: 'runbook-restore-drill',
    PGCONNECT_TIMEOUT: '10',
  };
  if (url.username) env.PGUSER = decodeURIComponent(url.username);
  if (url.password) env.PGPASSWORD = decodeURIComponent(url.password);
  const sslmode = url.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  return env;
}

function urlForDatabase(databaseUrl: string, database: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs psql (plain SQL) or pg_restore (custom format) with the dump on stdin; the error keeps the tool's last stderr lines. */
async function runRestoreTool(format: 'plain' | 'custom', source: Readable, env: NodeJS.ProcessEnv, signal: AbortSignal, key: string): Promise<void> {
  const [command, args] =
    format === 'plain'
      ? ['psql', ['-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-f', '-']]
      : ['pg_restore', ['--no-owner', '--no-privileges', '--exit-on-error', '--single-transaction', '--no-password', `--dbname=${env.PGDATABASE}`]];
  const child = spawn(command, args as string[], { env, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const onAbort = () => child.kill('SIGTERM');
  signal.addEventListener('abort', onAbort);
  try {
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code));
    });
    const piped = pipeline(source, child.stdin!).then(
      () => undefined,
      (err: unknown) => err,
    );
    const [code, pipeError] = await Promise.all([exited, piped]);
    if (signal.aborted) return;
    if (code !== 0) {
      const detail = redactUrlCredentials(stderr.trim().split('\n').slice(-5).join(' | ')).slice(0, 1000);
      const type = /could not connect|connection to server|Connection refused|timeout expired/i.test(stderr) ? 'Transient' : 'InvalidInput';
      throw failure(type, `${command} could not restore ${key} (exit ${code}): ${detail}`);
    }
    if (pipeError) throw failure('Transient', `streaming ${key} into ${command}: ${errorText(pipeError)}`);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') throw failure('NotFound', `${command} is not installed on the worker (PostgreSQL client tools are needed)`);
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

export function createPostgresRestoreActivities({ pool, allowedDatabases, databaseUrl, s3 }: PostgresDeps) {
  return {
    /**
     * Disaster-recovery drill: streams a dump from the backup bucket into a new scratch database with
     * psql (plain) or pg_restore (custom, 'PGDMP' header), counts rows of every restored table, and
     * drops the scratch database at the end, also on failure or cancellation.
     */
    async restoreDumpIntoScratchDatabase(input: { key: string; scratchName?: string; expectTables?: string[] }): Promise<RestoreDrillResult> {
      const db = requirePool(pool);
      if (!databaseUrl) throw refused('restore drill needs the database URL (databaseUrl) for psql / pg_restore');
      if (!s3) throw refused('restore drill needs the backup bucket (S3) configured');
      const backupPrefix = s3.backupPrefix ?? 'database/';
      const key = input?.key;
      if (typeof key !== 'string' || key.length === 0 || key.length > 1024 || key.endsWith('/') || key.split('/').includes('..')) {
        throw invalidInput(`key must be an object key, got ${JSON.stringify(key)}`);
      }
      if (!key.startsWith(backupPrefix)) throw refused(`key ${key} is not under the backup prefix ${backupPrefix}`);
      const expectTables = input.expectTables ?? [];
      for (const table of expectTables) quoteIdentifier(table, 'expected table');
      const connected = (await classified('read current database', () => db.query<{ db: string }>('SELECT current_database() AS db'))).rows[0]!.db;
      const scratch = assertScratchName(input.scratchName ?? defaultScratchName(key), allowedDatabases, connected);
      const quotedScratch = quoteIdentifier(scratch, 'scratch database');
      const context = Context.current();
      const signal = context.cancellationSignal;

      // A leftover of a crashed attempt (same name) goes first; FORCE ends any session still in it.
      await classified(`drop leftover scratch database ${scratch}`, () => db.query(`DROP DATABASE IF EXISTS ${quotedScratch} WITH (FORCE)`));
      await classified(`create scratch database ${scratch}`, () => db.query(`CREATE DATABASE ${quotedScratch}`));
      const started = Date.now();
      let outcome: Omit<RestoreDrillResult, 'dropped' | 'durationMs'> | undefined;
      let error: unknown;
      let body: Readable | undefined;
      try {
        const object = await classified(`get s3://${s3.bucket}/${key}`, () => s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }), { abortSignal: signal }));
        body = object.Body as Readable | undefined;
        if (!body) throw failure('NotFound', `s3://${s3.bucket}/${key} has no body`);
        const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        const head: Buffer[] = [];
        let headLength = 0;
        while (headLength < 5) {
          const next = await chunks.next();
          if (next.done) break;
          head.push(next.value);
          headLength += next.value.length;
        }
        if (headLength === 0) throw failure('InvalidInput', `s3://${s3.bucket}/${key} is empty`);
        const first = Buffer.concat(head);
        if (first[0] === 0x1f && first[1] === 0x8b) throw failure('InvalidInput', `${key} is gzip-compressed; expected a plain SQL or custom-format dump`);
        const format = first.subarray(0, 5).toString('latin1') === 'PGDMP' ? 'custom' : 'plain';
        let bytes = 0;
        let lastBeat = 0;
        const counted = Readable.from(
          (async function* () {
            bytes += first.length;
            yield first;
            for (;;) {
              const next = await chunks.next();
              if (next.done) return;
              bytes += next.value.length;
              if (Date.now() - lastBeat > 1000) {
                lastBeat = Date.now();
                heartbeat({ phase: 'restore', key, bytes });
              }
              yield next.value;
            }
          })(),
        );
        await runRestoreTool(format, counted, libpqEnvironment(databaseUrl, scratch), signal, key);
        if (signal.aborted) await context.cancelled;
        heartbeat({ phase: 'verify', key, bytes });
        const tables = await verify(urlForDatabase(databaseUrl, scratch), scratch);
        const names = new Set(tables.map((t) => t.table));
        const problems = [...(tables.length === 0 ? ['no tables restored'] : []), ...expectTables.filter((t) => !names.has(t)).map((t) => `expected table ${t} is missing`)];
        outcome = { key, format, bytes, scratchDatabase: scratch, tables, totalRows: tables.reduce((a, t) => a + t.rows, 0), verified: problems.length === 0, problems };
      } catch (err) {
        error = err;
      } finally {
        body?.destroy(); // a failed or cancelled restore leaves no half-read download behind
      }
      const durationMs = Date.now() - started;
      let dropped = true;
      try {
        await classified(`drop scratch database ${scratch}`, () => db.query(`DROP DATABASE IF EXISTS ${quotedScratch} WITH (FORCE)`));
      } catch (dropError) {
        dropped = false;
        if (!error) error = dropError;
      }
      if (signal.aborted) await context.cancelled;
      if (error || !outcome) throw error;
      return { ...outcome, durationMs, dropped };
    },
  };
}

async function verify(scratchUrl: string, scratch: string): Promise<RestoreDrillResult['tables']> {
  const client = new Client({ connectionString: scratchUrl, application_name: 'runbook-restore-drill', connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await classified(`connect to ${scratch}`, () => client.connect());
  try {
    return await classified(`count rows in ${scratch}`, async () => {
      const { rows } = await client.query<{ schema: string; table: string }>(
        `SELECT n.nspname AS schema, c.relname AS table FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
          ORDER BY 1, 2 LIMIT 500`,
      );
      const tables: RestoreDrillResult['tables'] = [];
      for (const { schema, table } of rows) {
        const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteCatalogName(schema)}.${quoteCatalogName(table)}`);
        tables.push({ schema, table, rows: num(count.rows[0]?.n) });
      }
      return tables;
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}
