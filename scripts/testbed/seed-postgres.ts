import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { scramSha256Verifier } from '../../activities/password-rotation';

/** The manual's application tables (性能优化 names users, projects, storyboards, characters; sessions expire). */
const schema = `
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE IF NOT EXISTS users (
  id bigserial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS projects (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users(id),
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS storyboards (
  id bigserial PRIMARY KEY,
  project_id bigint NOT NULL REFERENCES projects(id),
  title text NOT NULL,
  position integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS characters (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users(id),
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS sessions (
  id text PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users(id),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
`;

/** Rows only when the tables are empty, so a restart does not duplicate them. */
const rows = `
INSERT INTO users (email, created_at)
  SELECT 'user' || i || '@example.com', now() - (i || ' days')::interval FROM generate_series(1, 50) AS i;
INSERT INTO projects (user_id, name, created_at)
  SELECT 1 + (i % 50), 'Short drama ' || i, now() - (i || ' hours')::interval FROM generate_series(1, 200) AS i;
INSERT INTO storyboards (project_id, title, position)
  SELECT 1 + (i % 200), 'Scene ' || i, i % 12 FROM generate_series(1, 1000) AS i;
INSERT INTO characters (user_id, name)
  SELECT 1 + (i % 50), 'Character ' || i FROM generate_series(1, 300) AS i;
-- Live sessions, sessions expired a day ago, and sessions expired more than 7 days ago.
INSERT INTO sessions (id, user_id, created_at, expires_at)
  SELECT 'live-' || i, 1 + (i % 50), now() - interval '1 hour', now() + interval '1 day' FROM generate_series(1, 100) AS i;
INSERT INTO sessions (id, user_id, created_at, expires_at)
  SELECT 'recent-' || i, 1 + (i % 50), now() - interval '3 days', now() - interval '1 day' FROM generate_series(1, 40) AS i;
INSERT INTO sessions (id, user_id, created_at, expires_at)
  SELECT 'stale-' || i, 1 + (i % 50), now() - interval '40 days', now() - interval '30 days' FROM generate_series(1, 60) AS i;
`;

/** The app's own login role (not a superuser): what short-drama-app logs in as, and what rotateDatabasePassword rotates. */
export const appRole = 'short_drama_app';
/** Owns the app's tables (no login), as a migration role would; the worker is a member for VACUUM and CREATE INDEX. */
export const tableOwnerRole = 'short_drama_owner';
/** The worker's own role (deploy/postgres/runbook-worker.sql) and the group of roles it may rotate. */
export const workerRole = 'runbook_worker';
export const rotatableGroup = 'runbook_rotatable';

const workerRoleSqlFile = join(__dirname, '../../deploy/postgres/runbook-worker.sql');

/** The same database on the same server, as the admin of adminUrl. */
function databaseUrlOf(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** CREATE ROLE unless it exists (names from our own constants, not from input). */
async function ensureRole(client: Client, role: string): Promise<void> {
  await client.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role}; END IF; END $$`);
}

/**
 * The short-drama database with the manual's tables owned by tableOwnerRole, its rows, and the app's
 * login role with the password of the env file. adminUrl is a superuser's on the same server.
 */
export async function seedShortDramaDatabase(adminUrl: string, database: string, appPassword: string): Promise<void> {
  await withClient(databaseUrlOf(adminUrl, 'postgres'), async (admin) => {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    // Identifier from our own constant, not from input; quoted all the same.
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  });
  await withClient(databaseUrlOf(adminUrl, database), async (db) => {
    await db.query(schema);
    const { rows: countRows } = await db.query<{ count: string }>('SELECT count(*) FROM users');
    if (Number(countRows[0]?.count) === 0) await db.query(`BEGIN; ${rows} COMMIT;`);
    await ensureRole(db, tableOwnerRole);
    await db.query(`ALTER ROLE ${tableOwnerRole} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS`);
    // As the role that made the tables (a migration role): CREATE INDEX needs CREATE on their schema too.
    await db.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${tableOwnerRole}`);
    // Every start: a rotation a test left half-done is put back to the password in the env file.
    await ensureRole(db, appRole);
    await db.query(`ALTER ROLE ${appRole} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${await scramSha256Verifier(appPassword)}'`);
    await db.query(`GRANT CONNECT ON DATABASE "${database.replace(/"/g, '""')}" TO ${appRole}; GRANT USAGE ON SCHEMA public TO ${appRole};
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${appRole}`);
    // The app's tables only: "ALL TABLES" would include pg_stat_statements' view, and a dump with that
    // grant no longer restores where the extension is missing (the restore drill's scratch database).
    await db.query(`DO $$ DECLARE t record; BEGIN
      FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') LOOP
        EXECUTE format('ALTER TABLE public.%I OWNER TO ${tableOwnerRole}', t.relname);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO ${appRole}', t.relname);
      END LOOP; END $$`);
  });
}

/** psql's :'name' (a literal) and :"name" (an identifier), as psql -v would put them, for our own SQL files. */
export function withPsqlVariables(sql: string, variables: Record<string, string>): string {
  return sql.replace(/:(['"])([A-Za-z_][A-Za-z0-9_]*)\1/g, (_match, quote: string, name: string) => {
    const value = variables[name];
    if (value === undefined) throw new Error(`${workerRoleSqlFile}: no value for psql variable ${name}`);
    return quote === "'" ? `'${value.replace(/'/g, "''")}'` : `"${value.replace(/"/g, '""')}"`;
  });
}

/**
 * The worker's least-privilege role (deploy/postgres/runbook-worker.sql, as an SRE would run it with
 * psql) in database, with the password of the env file (sent as its SCRAM verifier), and the app's
 * role made rotatable. The drill role must exist (seedRestoreDrillRole); it is created plain if not.
 */
export async function seedWorkerRole(adminUrl: string, database: string, drillRole: string, workerPassword: string): Promise<void> {
  await withClient(databaseUrlOf(adminUrl, database), async (db) => {
    await ensureRole(db, drillRole);
    await db.query(withPsqlVariables(readFileSync(workerRoleSqlFile, 'utf8'), { database, table_owner: tableOwnerRole, drill_role: drillRole }));
    await db.query(`ALTER ROLE ${workerRole} PASSWORD '${await scramSha256Verifier(workerPassword)}'`);
    await db.query(`GRANT ${rotatableGroup} TO ${appRole}`);
  });
}

/**
 * The disaster-recovery drill's own role: it logs in and owns the scratch databases the worker
 * creates for it, nothing else (no superuser, CREATEDB or CREATEROLE). pg_hba.conf rejects it for
 * the production and maintenance databases (revoking CONNECT from PUBLIC would lock out the
 * login roles other tests create): written here for a server on this host (`rejectedDatabases`),
 * by its start script for the real node's pod. The password is sent as its SCRAM verifier, never in clear.
 */
export async function seedRestoreDrillRole(adminUrl: string, role: string, password: string, rejectedDatabases?: string[]): Promise<void> {
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // Identifiers from our own constants, not from input.
    await admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${role}') THEN CREATE ROLE ${role}; END IF; END $$`);
    const verifier = await scramSha256Verifier(password);
    await admin.query(`ALTER ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${verifier}'`);
    if (!rejectedDatabases) return;
    const hbaFile = (await admin.query<{ hba_file: string }>('SHOW hba_file')).rows[0]!.hba_file;
    const marker = `# runbook test bed: ${role} only in its scratch databases`;
    const hba = readFileSync(hbaFile, 'utf8');
    if (!hba.includes(marker)) {
      const databases = rejectedDatabases.join(',');
      // First match wins: these go before the cluster's own lines.
      writeFileSync(hbaFile, `${marker}\nlocal ${databases} ${role} reject\nhost ${databases} ${role} all reject\n${hba}`);
      await admin.query('SELECT pg_reload_conf()');
    }
  } finally {
    await admin.end();
  }
}
