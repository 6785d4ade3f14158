import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { rotatableGroup, seedShortDramaDatabase } from '../../scripts/testbed/seed-postgres';
import { waitUntil } from '../../scripts/testbed/processes';
import { testbedEnv } from './testbed';

/** A lowercase suffix for names of this run (databases, application names, keys). */
export function uniqueSuffix(): string {
  return randomBytes(5).toString('hex');
}

/** The test bed's database URL (the worker's role, or the superuser's with admin) pointing at another database on the same server. */
export function urlForDatabase(database: string, as: 'worker' | 'admin' = 'worker'): string {
  const env = testbedEnv();
  const url = new URL((as === 'admin' ? env.TESTBED_DATABASE_ADMIN_URL : env.DATABASE_URL)!);
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * A LOGIN role `<prefix>_<suffix>` with a random known password, member of the rotatable group
 * (what rotateDatabasePassword may change); drop it with the returned function.
 */
export async function rotatableLoginRole(prefix: string): Promise<{ role: string; password: string; drop: () => Promise<unknown> }> {
  const role = `${prefix}_${uniqueSuffix()}`;
  const password = randomBytes(18).toString('base64url');
  await withAdmin(async (admin) => {
    // pg_stat_statements keeps CREATE ROLE ... PASSWORD verbatim: not for this statement.
    await admin.query('SET pg_stat_statements.track_utility = off');
    await admin.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}' IN ROLE ${rotatableGroup}`);
  });
  return { role, password, drop: () => withAdmin((admin) => admin.query(`DROP ROLE IF EXISTS "${role}"`)) };
}

/** Runs fn on a fresh admin connection (database `postgres`). */
export async function withAdmin<T>(fn: (admin: Client) => Promise<T>): Promise<T> {
  const admin = new Client({ connectionString: testbedEnv().TESTBED_POSTGRES_ADMIN_URL, application_name: 'pgtest-admin' });
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

export interface ScratchDatabase {
  name: string;
  /** As the worker's role (runbook_worker), which the seeded tables' owner role includes. */
  url: string;
  /** As the superuser, for what only a superuser may set up. */
  adminUrl: string;
  /** A pool on the scratch database (closed by drop). */
  pool(applicationName: string, max?: number): Pool;
  drop(): Promise<void>;
}

/**
 * A database of its own for tests that change data or schema: created empty, or seeded with the
 * test bed's own seed (same tables and rows as short_drama_prod), so the shared database stays as
 * other tests expect it. CREATE DATABASE ... TEMPLATE short_drama_prod is not used: it needs the
 * template to have no other sessions, which a shared test bed cannot promise.
 */
export async function createScratchDatabase(label: string, options: { seed: boolean }): Promise<ScratchDatabase> {
  const name = `pgtest_${label}_${uniqueSuffix()}`;
  const url = urlForDatabase(name);
  const env = testbedEnv();
  if (options.seed) await seedShortDramaDatabase(env.TESTBED_POSTGRES_ADMIN_URL!, name, env.TESTBED_APP_DATABASE_PASSWORD!);
  else await withAdmin((admin) => admin.query(`CREATE DATABASE "${name}"`));
  const pools: Pool[] = [];
  return {
    name,
    url,
    adminUrl: urlForDatabase(name, 'admin'),
    pool(applicationName, max = 2) {
      const pool = new Pool({ connectionString: url, application_name: applicationName, max });
      pool.on('error', () => undefined);
      pools.push(pool);
      return pool;
    },
    async drop() {
      await Promise.allSettled(pools.map((p) => p.end()));
      await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    },
  };
}

export async function databaseExists(name: string): Promise<boolean> {
  return withAdmin(async (admin) => (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
}

export { waitUntil };
