import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { debianPackages, ensureDebianPackages, postgresBin } from './install';
import { port } from './layout';
import { isAlive, runChecked, startDetached, stopDetached, waitUntil } from './processes';
import { seedRestoreDrillRole, seedShortDramaDatabase, seedWorkerRole, workerRole } from './seed-postgres';
import type { TestbedContext, TestbedServer } from './context';
import { prodAddress } from './node/node-prod';

export const seedDatabase = 'short_drama_prod';
/** Where the drill role may not log in: production and the maintenance databases (it owns only its scratch ones). */
export const drillRejectedDatabases = [seedDatabase, 'postgres', 'template1'];
/** The disaster-recovery drill's role (RESTORE_DRILL_DATABASE_URL). */
export const restoreDrillRole = 'runbook_restore_drill';

/** The host's PostgreSQL process (the restore drill's server, and short-drama-prod's unless the real node runs it). */
export function hostPostgresUrl(ctx: TestbedContext, database: string): string {
  return `postgres://postgres:${encodeURIComponent(ctx.secrets.postgresPassword)}@127.0.0.1:${port(ctx.layout, 'postgres')}/${database}`;
}

/** short-drama-prod's PostgreSQL as superuser: the host process, or the pod through its NodePort (TESTBED_REAL_NODE=1). */
export function postgresUrl(ctx: TestbedContext, database: string): string {
  return `postgres://postgres:${encodeURIComponent(ctx.secrets.postgresPassword)}@${prodAddress(ctx.layout, 'postgres', `127.0.0.1:${port(ctx.layout, 'postgres')}`)}/${database}`;
}

/** short-drama-prod's PostgreSQL as the worker's least-privilege role (deploy/postgres/runbook-worker.sql). */
export function workerPostgresUrl(ctx: TestbedContext, database: string): string {
  return `postgres://${workerRole}:${encodeURIComponent(ctx.secrets.workerDatabasePassword)}@${prodAddress(ctx.layout, 'postgres', `127.0.0.1:${port(ctx.layout, 'postgres')}`)}/${database}`;
}

/** The drill role's URL; the drill replaces the database with its scratch database. */
export function restoreDrillUrl(ctx: TestbedContext): string {
  return `postgres://${restoreDrillRole}:${encodeURIComponent(ctx.secrets.restoreDrillPassword)}@${prodAddress(ctx.layout, 'postgres', `127.0.0.1:${port(ctx.layout, 'postgres')}`)}/postgres`;
}

const isRoot = () => process.getuid?.() === 0;

/** As root, PostgreSQL's programs run as the `postgres` user (the server refuses root). */
function asPostgresUser(command: string, args: string[]): [string, string[]] {
  return isRoot() ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', command, ...args]] : [command, args];
}

function dataDir(ctx: TestbedContext): string {
  return join(ctx.layout.postgresDir, 'data');
}

/**
 * The data dir lives in the temp dir, keyed by the checkout's path, so a fresh clone at a path used
 * before (CI) finds a cluster made with another checkout's password. The marker ties it to ours.
 */
function passwordMarker(ctx: TestbedContext): string {
  return join(ctx.layout.postgresDir, 'password.sha256');
}

function passwordDigest(ctx: TestbedContext): string {
  return createHash('sha256').update(ctx.secrets.postgresPassword).digest('hex');
}

function clusterMatchesPassword(ctx: TestbedContext): boolean {
  const marker = passwordMarker(ctx);
  return existsSync(marker) && readFileSync(marker, 'utf8').trim() === passwordDigest(ctx);
}

function initialiseCluster(ctx: TestbedContext): void {
  const dir = ctx.layout.postgresDir;
  rmSync(dataDir(ctx), { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (isRoot()) chownSync(dir, uidOf('postgres'), gidOf('postgres'));
  const pwfile = join(dir, 'initial-password');
  writeFileSync(pwfile, ctx.secrets.postgresPassword, { mode: 0o600 });
  if (isRoot()) chownSync(pwfile, uidOf('postgres'), gidOf('postgres'));
  try {
    const [command, args] = asPostgresUser(join(postgresBin, 'initdb'), ['-D', dataDir(ctx), '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C']);
    runChecked(command, args);
  } finally {
    rmSync(pwfile, { force: true });
  }
  // In postgresql.conf rather than on the command line: ALTER SYSTEM (postgresql.auto.conf) must be able to override them.
  const settings = [
    `port = ${port(ctx.layout, 'postgres')}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dir}'`,
    `shared_preload_libraries = 'pg_stat_statements'`,
    `pg_stat_statements.track = all`,
    `max_connections = 100`,
    `fsync = off`,
    `log_destination = 'stderr'`,
  ];
  const confPath = join(dataDir(ctx), 'postgresql.conf');
  writeFileSync(confPath, `${readFileSync(confPath, 'utf8')}\n# runbook test bed\n${settings.join('\n')}\n`);
  writeFileSync(passwordMarker(ctx), passwordDigest(ctx));
}

/** A server killed hard leaves postmaster.pid behind and the next one would refuse to start. */
function removeStalePostmasterPid(ctx: TestbedContext): void {
  const file = join(dataDir(ctx), 'postmaster.pid');
  if (!existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  if (!(Number.isInteger(pid) && pid > 0 && isAlive(pid))) rmSync(file, { force: true });
}

function uidOf(user: string): number {
  return Number(runChecked('id', ['-u', user]).trim());
}

function gidOf(user: string): number {
  return Number(runChecked('id', ['-g', user]).trim());
}

export const postgresServer: TestbedServer = {
  name: 'postgres',
  ports: ['postgres'],
  install(ctx) {
    ensureDebianPackages(
      debianPackages.filter((p) => p.startsWith('postgresql')),
      ctx.log,
    );
  },
  async isHealthy(ctx) {
    const client = new Client({ connectionString: hostPostgresUrl(ctx, 'postgres'), connectionTimeoutMillis: 1000 });
    await client.connect();
    try {
      await client.query('SELECT 1');
      return true;
    } finally {
      await client.end();
    }
  },
  async start(ctx) {
    if (!existsSync(join(dataDir(ctx), 'PG_VERSION')) || !clusterMatchesPassword(ctx)) {
      if (existsSync(dataDir(ctx))) ctx.log('postgres: the data dir was made for another password; initialising a new cluster');
      initialiseCluster(ctx);
    }
    removeStalePostmasterPid(ctx);
    const [command, args] = asPostgresUser(join(postgresBin, 'postgres'), ['-D', dataDir(ctx)]);
    startDetached(ctx.layout.stateDir, 'postgres', command, args, { cwd: ctx.layout.postgresDir });
    await waitUntil('PostgreSQL', () => this.isHealthy(ctx), 60_000, join(ctx.layout.stateDir, 'postgres.log'));
  },
  /** Stopped, and its data folder (in the system temp folder, see passwordMarker) removed: `down` leaves nothing outside the state folder. */
  async stop(layout) {
    await stopDetached(layout.stateDir, 'postgres');
    rmSync(layout.postgresDir, { recursive: true, force: true });
  },
  async seed(ctx) {
    await seedShortDramaDatabase(hostPostgresUrl(ctx, 'postgres'), seedDatabase, ctx.secrets.appDatabasePassword);
    await seedRestoreDrillRole(hostPostgresUrl(ctx, 'postgres'), restoreDrillRole, ctx.secrets.restoreDrillPassword, drillRejectedDatabases);
    await seedWorkerRole(hostPostgresUrl(ctx, 'postgres'), seedDatabase, restoreDrillRole, ctx.secrets.workerDatabasePassword);
  },
};

/**
 * The real node's short-drama-prod (TESTBED_REAL_NODE=1): the same seed against the pod's server,
 * through its NodePort (which answers once kube-proxy has the pod's endpoint).
 */
export async function seedProdDatabase(ctx: TestbedContext): Promise<void> {
  await waitUntil(
    "short-drama-prod's PostgreSQL through its Service",
    async () => {
      const client = new Client({ connectionString: postgresUrl(ctx, 'postgres'), connectionTimeoutMillis: 2000 });
      try {
        await client.connect();
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    60_000,
  );
  await seedShortDramaDatabase(postgresUrl(ctx, 'postgres'), seedDatabase, ctx.secrets.appDatabasePassword);
  // The pod's pg_hba.conf got the drill role's reject lines at initdb (postgres-start.sh, DRILL_ROLE).
  await seedRestoreDrillRole(postgresUrl(ctx, 'postgres'), restoreDrillRole, ctx.secrets.restoreDrillPassword);
  await seedWorkerRole(postgresUrl(ctx, 'postgres'), seedDatabase, restoreDrillRole, ctx.secrets.workerDatabasePassword);
}
