import type { PreflightRow } from '../common/preflight';
import { serverAccessRoles, type PostgresDeps } from './postgres-common';
import { maintainedTables } from './postgres-maintenance';
import { createPostgresConnectionActivities } from './postgres-connections';
import { createPostgresMaintenanceActivities } from './postgres-maintenance';
import { createPostgresRestoreActivities } from './postgres-restore';
import { createPostgresStatisticsActivities } from './postgres-statistics';
import { createPostgresOptimizationActivities } from './postgres-optimization';
import { excessOutcome, notConfigured, runChecks, type CheckOutcome } from './preflight-checks';
import { setPasswordFunction } from './password-rotation';
import type { Pool } from 'pg';

export type { PostgresDeps } from './postgres-common';
export type { ConnectionStats, MaxConnectionsResult, TerminateIdleResult, WaitForPostgresResult } from './postgres-connections';
export type { DeleteExpiredSessionsResult, EnsureIndexesResult, VacuumAnalyzeResult } from './postgres-maintenance';
export type { RestoreDrillResult } from './postgres-restore';
export type { BloatEstimate, BloatEstimates, ExplainedStatement, ExplainedStatements, ReindexedIndex } from './postgres-optimization';
export type { DatabaseSize, SlowestStatements, TableSize } from './postgres-statistics';

/** Privileges the runbooks use, as SQL that answers true or false for the connected role. */
const privilegeChecks: Array<[check: string, sql: string, needed: string]> = [
  [
    'privilege: terminate backends',
    `SELECT rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS ok FROM pg_roles WHERE rolname = current_user`,
    'superuser or pg_signal_backend (dbConnectionExhaustion)',
  ],
  [
    'privilege: read all statistics',
    `SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS ok FROM pg_roles WHERE rolname = current_user`,
    'superuser or pg_read_all_stats (connection and statement statistics)',
  ],
  [
    'privilege: ALTER SYSTEM max_connections',
    `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR has_parameter_privilege('max_connections', 'ALTER SYSTEM') AS ok`,
    'superuser or ALTER SYSTEM on max_connections (dbConnectionExhaustion)',
  ],
  ['privilege: create scratch database', `SELECT rolsuper OR rolcreatedb AS ok FROM pg_roles WHERE rolname = current_user`, 'superuser or CREATEDB (disaster-recovery drill)'],
  ['privilege: reload configuration', `SELECT has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE') AS ok`, 'superuser or EXECUTE on pg_reload_conf() (dbConnectionExhaustion)'],
  [
    'privilege: set role passwords',
    `SELECT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) OR coalesce(has_function_privilege(to_regprocedure('${setPasswordFunction}'), 'EXECUTE'), false) AS ok`,
    `EXECUTE on ${setPasswordFunction} (deploy/postgres/runbook-worker.sql), CREATEROLE or superuser (rotateDatabasePassword)`,
  ],
  [
    'privilege: maintain tables',
    `SELECT CASE WHEN count(*) = 0 THEN NULL ELSE bool_and(pg_has_role(current_user, c.relowner, 'USAGE')) END AS ok
       FROM pg_class AS c WHERE c.oid IN (SELECT to_regclass('public.' || t) FROM unnest(ARRAY[${maintainedTables.map((t) => `'${t}'`).join(', ')}]) AS t)`,
    `the tables' owner role (VACUUM, CREATE INDEX: weeklyReview)`,
  ],
  [
    'privilege: delete expired sessions',
    `SELECT CASE WHEN to_regclass('public.sessions') IS NULL THEN NULL ELSE has_table_privilege('public.sessions', 'DELETE') END AS ok`,
    'DELETE on sessions (weeklyReview)',
  ],
];

/** What the connected role may do beyond the runbooks' needs (deploy/postgres/runbook-worker.sql grants exactly those). */
async function excessRoleAttributes(pool: Pool): Promise<string[]> {
  const { rows } = await pool.query<{ usr: string; rolsuper: boolean; rolcreaterole: boolean; rolreplication: boolean; rolbypassrls: boolean; superusers: string[]; server: string[] }>(
    `SELECT r.rolname AS usr, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
            ARRAY(SELECT s.rolname::text FROM pg_roles AS s WHERE s.rolsuper AND s.oid <> r.oid AND pg_has_role(r.oid, s.oid, 'MEMBER')) AS superusers,
            ARRAY(SELECT g.rolname::text FROM pg_roles AS g WHERE g.rolname = ANY($1) AND pg_has_role(r.oid, g.oid, 'MEMBER')) AS server
       FROM pg_roles AS r WHERE r.rolname = current_user`,
    [serverAccessRoles],
  );
  const role = rows[0];
  if (!role) return [];
  // A superuser is everything at once; its memberships say nothing more.
  if (role.rolsuper) return [`${role.usr} is a superuser`];
  return [
    ...(role.rolcreaterole ? [`${role.usr} has CREATEROLE (may change any non-superuser's password; runbook.set_role_password is narrower)`] : []),
    ...(role.rolreplication ? [`${role.usr} has REPLICATION`] : []),
    ...(role.rolbypassrls ? [`${role.usr} has BYPASSRLS`] : []),
    ...role.superusers.map((s) => `${role.usr} is a member of superuser ${s}`),
    ...role.server.map((g) => `${role.usr} is a member of ${g}`),
  ];
}

export function createPostgresActivities(deps: PostgresDeps) {
  const { pool, allowedDatabases } = deps;
  return {
    ...createPostgresConnectionActivities(deps),
    ...createPostgresStatisticsActivities(deps),
    ...createPostgresMaintenanceActivities(deps),
    ...createPostgresOptimizationActivities(deps),
    ...createPostgresRestoreActivities(deps),
    async preflightPostgres(): Promise<PreflightRow[]> {
      if (!pool) return notConfigured('postgres');
      return runChecks('postgres', [
        [
          'connect',
          async () => {
            const { rows } = await pool.query<{ db: string; usr: string }>('SELECT current_database() AS db, current_user AS usr');
            return { ok: true, detail: `connected to ${rows[0]?.db} as ${rows[0]?.usr}` };
          },
        ],
        [
          'server version',
          async () => {
            const { rows } = await pool.query<{ num: string; version: string }>(`SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version`);
            const num = Number(rows[0]?.num);
            return { ok: num >= 120000, detail: `PostgreSQL ${rows[0]?.version}${num >= 120000 ? '' : ' (12 or newer needed)'}` };
          },
        ],
        [
          'pg_stat_statements',
          async () => {
            const { rows } = await pool.query<{ preloaded: boolean; installed: boolean }>(
              `SELECT current_setting('shared_preload_libraries') ~ 'pg_stat_statements' AS preloaded,
                      EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS installed`,
            );
            const { preloaded, installed } = rows[0] ?? { preloaded: false, installed: false };
            if (!preloaded) return { ok: false, detail: 'not in shared_preload_libraries' };
            if (!installed) return { ok: false, detail: 'preloaded but CREATE EXTENSION pg_stat_statements not run in this database' };
            const count = await pool.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_statements');
            return { ok: true, detail: `${count.rows[0]?.n} statements tracked` };
          },
        ],
        [
          'allowlisted databases exist',
          async () => {
            const { rows } = await pool.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1::text[])', [allowedDatabases]);
            const found = new Set(rows.map((r) => r.datname));
            const missing = allowedDatabases.filter((db) => !found.has(db));
            return { ok: missing.length === 0, detail: missing.length === 0 ? `found ${allowedDatabases.join(', ')}` : `missing: ${missing.join(', ')}` };
          },
        ],
        ...privilegeChecks.map(([check, sql, needed]): [string, () => Promise<CheckOutcome>] => [
          check,
          async () => {
            const { rows } = await pool.query<{ ok: boolean | null }>(sql);
            const ok = rows[0]?.ok;
            if (ok === null || ok === undefined) return { ok: false, detail: `cannot tell: ${needed}; object missing` };
            return { ok, detail: ok ? 'granted' : `missing: ${needed}` };
          },
        ]),
        [
          'no excess privileges',
          async () => excessOutcome(await excessRoleAttributes(pool), "beyond the runbooks' needs: no superuser, CREATEROLE, REPLICATION, BYPASSRLS or server file/program roles"),
        ],
      ]);
    },
  };
}
