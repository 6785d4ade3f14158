import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Context, heartbeat } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Client, type Pool } from 'pg';
import { executePlainDump, type DumpExecution } from './dump-sql';
import { callsTo, classifyError, failure, invalidInput, refused } from './errors';
import { quoteIdentifier } from './guards';
import { errorText } from '../common/failures';
import { num, quoteCatalogName, requirePool, serverAccessRoles, type PostgresDeps } from './postgres-common';

const inPostgres = callsTo('PostgreSQL');
const inS3 = callsTo('S3');

export interface RestoreDrillResult {
  key: string;
  format: 'plain' | 'custom';
  bytes: number;
  scratchDatabase: string;
  /** Statements the drill role may not run (extensions, grants on catalog objects), skipped with the server's reason. */
  skipped: string[];
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

/** The role the drill restores as: the user of the configured restore-drill URL. */
export function drillRoleOf(restoreDrillUrl: string): string {
  const role = decodeURIComponent(new URL(restoreDrillUrl).username);
  if (!role) throw refused('the restore-drill URL (postgres.restoreDrillUrl) names no role');
  return role;
}

function urlForDatabase(databaseUrl: string, database: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** What a refused production login says: no pg_hba.conf entry / rejected (28000), no CONNECT privilege (42501), no such database (3D000). */
const loginRefusedCodes = new Set(['28000', '42501', '3D000']);

/**
 * The drill role may own scratch databases and nothing more: no superuser (nor member of one),
 * CREATEROLE, REPLICATION, BYPASSRLS, server file/program roles, other databases, and no login to
 * any production database (tried for real, so pg_hba.conf and CONNECT privileges both count).
 */
async function assertDrillRoleRestricted(db: Pool, restoreDrillUrl: string, productionDatabases: string[]): Promise<string> {
  const role = drillRoleOf(restoreDrillUrl);
  const { rows } = await inPostgres(`read role ${role}`, () =>
    db.query<{ worker: string; rolsuper: boolean; rolcreaterole: boolean; rolreplication: boolean; rolbypassrls: boolean; superusers: string[]; server: string[]; owns: string[] }>(
      `SELECT current_user AS worker, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
              ARRAY(SELECT s.rolname::text FROM pg_roles AS s WHERE s.rolsuper AND s.oid <> r.oid AND pg_has_role(r.oid, s.oid, 'MEMBER')) AS superusers,
              ARRAY(SELECT g.rolname::text FROM pg_roles AS g WHERE g.rolname = ANY($2) AND pg_has_role(r.oid, g.oid, 'MEMBER')) AS server,
              ARRAY(SELECT d.datname::text FROM pg_database AS d WHERE d.datdba = r.oid AND d.datname !~ '^dr_drill_') AS owns
         FROM pg_roles AS r WHERE r.rolname = $1`,
      [role, serverAccessRoles],
    ),
  );
  const found = rows[0];
  if (!found) throw refused(`restore-drill role ${role} does not exist; create it (LOGIN, no superuser, no CREATEROLE) and keep it out of production`);
  const why = [
    ...(found.worker === role ? [`it is the worker's own role`] : []),
    ...(found.rolsuper ? ['it is a superuser'] : []),
    ...(found.rolcreaterole ? ['it has CREATEROLE'] : []),
    ...(found.rolreplication ? ['it has REPLICATION'] : []),
    ...(found.rolbypassrls ? ['it has BYPASSRLS'] : []),
    ...found.superusers.map((s) => `it is a member of superuser ${s}`),
    ...found.server.map((g) => `it is a member of ${g}`),
    ...found.owns.map((d) => `it owns database ${d}`),
  ];
  if (why.length) throw refused(`restore-drill role ${role} is refused: ${why.join(', ')}; a drill restores untrusted backups and runs as a role that owns only its scratch database`);
  const reached: string[] = [];
  for (const database of [...new Set(productionDatabases)]) {
    const client = new Client({ connectionString: urlForDatabase(restoreDrillUrl, database), application_name: 'runbook-restore-drill-check', connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      reached.push(database);
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (code === '28P01') throw refused(`restore-drill role ${role}: the configured password is rejected`);
      if (!loginRefusedCodes.has(code)) throw classifyError(err, { action: `check that ${role} cannot connect to ${database}`, system: 'PostgreSQL' });
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  if (reached.length) {
    throw refused(`restore-drill role ${role} can connect to production database ${reached.join(', ')}; REVOKE CONNECT ON DATABASE ... FROM PUBLIC (or reject the role in pg_hba.conf) first`);
  }
  return role;
}

/** pg_restore turns a custom-format archive into SQL on its stdout without connecting anywhere: no credentials in its environment. */
function customToSql(source: Readable, signal: AbortSignal, key: string): { sql: Readable; exited: Promise<void> } {
  const child = spawn('pg_restore', ['--no-owner', '--no-privileges', '--file=-'], { env: { PATH: process.env.PATH, LANG: process.env.LANG }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const onAbort = () => child.kill('SIGTERM');
  signal.addEventListener('abort', onAbort);
  const closed = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  // The tool may stop reading early (a broken archive); its exit code says why, not the pipe.
  const piped = pipeline(source, child.stdin!).catch(() => undefined);
  const exited = Promise.all([closed, piped])
    .then(([code]) => {
      if (code !== 0 && !signal.aborted) throw failure('InvalidInput', `pg_restore could not read ${key} (exit ${code}): ${stderr.trim().split('\n').slice(-5).join(' | ').slice(0, 1000)}`);
    })
    .catch((err: unknown) => {
      if ((err as { code?: string }).code === 'ENOENT') throw failure('NotFound', 'pg_restore is not installed on the worker (PostgreSQL client tools are needed)');
      throw err;
    })
    .finally(() => signal.removeEventListener('abort', onAbort));
  return { sql: child.stdout!, exited };
}

/** host:port of a postgres:// URL, for a sentence (never its credentials). */
const serverOf = (url: string): string => {
  const { hostname, port } = new URL(url);
  return `${hostname}:${port || '5432'}`;
};

/** Runs the dump's SQL as the drill role in the scratch database; a cancellation closes the connection. */
async function restoreAsDrillRole(scratchUrl: string, format: 'plain' | 'custom', source: Readable, signal: AbortSignal, key: string, onProgress: () => void): Promise<DumpExecution> {
  const client = new Client({ connectionString: scratchUrl, application_name: 'runbook-restore-drill', connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect().catch((err: unknown) => {
    if ((err as { code?: string }).code === '28P01') throw refused(`restore-drill role ${drillRoleOf(scratchUrl)}: the configured password is rejected`);
    // The worker has just created it: the drill's URL names another server than the worker's.
    if ((err as { code?: string }).code === '3D000')
      throw refused(
        `the scratch database created through DATABASE_URL does not exist on the server of RESTORE_DRILL_DATABASE_URL (${serverOf(scratchUrl)}): both must name the same PostgreSQL server`,
      );
    throw classifyError(err, { action: 'connect to the scratch database as the drill role', system: 'PostgreSQL' });
  });
  const onAbort = () => void client.end().catch(() => undefined);
  signal.addEventListener('abort', onAbort);
  const converted = format === 'custom' ? customToSql(source, signal, key) : undefined;
  try {
    const executed = executePlainDump(client, converted?.sql ?? source, onProgress);
    // A pg_restore failure ends its output early; its own error is the one to report.
    const [execution] = await Promise.all([executed, converted?.exited]);
    return execution;
  } catch (err) {
    await converted?.exited;
    if (err instanceof ApplicationFailure) throw err;
    const code = (err as { code?: string }).code ?? '';
    throw failure(code.startsWith('08') || code === '57P01' ? 'Transient' : 'InvalidInput', `could not restore ${key}: ${errorText(err)}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
    await client.end().catch(() => undefined);
  }
}

export function createPostgresRestoreActivities({ pool, allowedDatabases, restoreDrillUrl, s3 }: PostgresDeps) {
  return {
    /**
     * Disaster-recovery drill: streams a dump from the backup bucket into a new scratch database with
     * psql (plain) or pg_restore (custom, 'PGDMP' header), counts rows of every restored table, and
     * drops the scratch database at the end, also on failure or cancellation.
     */
    async restoreDumpIntoScratchDatabase(input: { key: string; scratchName?: string; expectTables?: string[] }): Promise<RestoreDrillResult> {
      const db = requirePool(pool);
      if (!restoreDrillUrl) {
        throw refused('restore drill needs its own role: configure postgres.restoreDrillUrl (RESTORE_DRILL_DATABASE_URL), a role with no superuser or CREATEROLE that cannot connect to production');
      }
      if (!s3) throw refused('restore drill needs the backup bucket (S3) configured');
      const backupPrefix = s3.backupPrefix ?? 'database/';
      const key = input?.key;
      if (typeof key !== 'string' || key.length === 0 || key.length > 1024 || key.endsWith('/') || key.split('/').includes('..')) {
        throw invalidInput(`key must be an object key, got ${JSON.stringify(key)}`);
      }
      if (!key.startsWith(backupPrefix)) throw refused(`key ${key} is not under the backup prefix ${backupPrefix}`);
      const expectTables = input.expectTables ?? [];
      for (const table of expectTables) quoteIdentifier(table, 'expected table');
      const connected = (await inPostgres('read current database', () => db.query<{ db: string }>('SELECT current_database() AS db'))).rows[0]!.db;
      const scratch = assertScratchName(input.scratchName ?? defaultScratchName(key), allowedDatabases, connected);
      const quotedScratch = quoteIdentifier(scratch, 'scratch database');
      const drillRole = await assertDrillRoleRestricted(db, restoreDrillUrl, [...allowedDatabases, connected]);
      const scratchUrl = urlForDatabase(restoreDrillUrl, scratch);
      const context = Context.current();
      const signal = context.cancellationSignal;

      // A leftover of a crashed attempt (same name) goes first; FORCE ends any session still in it.
      await inPostgres(`drop leftover scratch database ${scratch}`, () => db.query(`DROP DATABASE IF EXISTS ${quotedScratch} WITH (FORCE)`));
      await inPostgres(`create scratch database ${scratch}`, () => db.query(`CREATE DATABASE ${quotedScratch} OWNER ${quoteIdentifier(drillRole, 'drill role')}`));
      const started = Date.now();
      let outcome: Omit<RestoreDrillResult, 'dropped' | 'durationMs'> | undefined;
      let error: unknown;
      let body: Readable | undefined;
      try {
        const object = await inS3(`get s3://${s3.bucket}/${key}`, () => s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }), { abortSignal: signal }));
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
        const execution = await restoreAsDrillRole(scratchUrl, format, counted, signal, key, () => undefined);
        if (signal.aborted) await context.cancelled;
        heartbeat({ phase: 'verify', key, bytes });
        const tables = await verify(scratchUrl, scratch);
        const names = new Set(tables.map((t) => t.table));
        const problems = [...(tables.length === 0 ? ['no tables restored'] : []), ...expectTables.filter((t) => !names.has(t)).map((t) => `expected table ${t} is missing`)];
        outcome = { key, format, bytes, scratchDatabase: scratch, skipped: execution.skipped, tables, totalRows: tables.reduce((a, t) => a + t.rows, 0), verified: problems.length === 0, problems };
      } catch (err) {
        error = err;
      } finally {
        body?.destroy(); // a failed or cancelled restore leaves no half-read download behind
      }
      const durationMs = Date.now() - started;
      let dropped = true;
      try {
        await inPostgres(`drop scratch database ${scratch}`, () => db.query(`DROP DATABASE IF EXISTS ${quotedScratch} WITH (FORCE)`));
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
  await inPostgres(`connect to ${scratch}`, () => client.connect());
  try {
    return await inPostgres(`count rows in ${scratch}`, async () => {
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
