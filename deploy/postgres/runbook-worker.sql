-- The runbook worker's PostgreSQL role, least privilege: exactly what the runbooks use.
-- Run it as a superuser, connected to the application's database, then give the role a password:
--
--   psql -v ON_ERROR_STOP=1 -v database=short_drama_prod -v table_owner=short_drama_owner \
--        -v drill_role=runbook_restore_drill -d short_drama_prod -f deploy/postgres/runbook-worker.sql
--   psql -d short_drama_prod -c '\password runbook_worker'
--   psql -d short_drama_prod -c 'GRANT runbook_rotatable TO short_drama_app'   -- each role rotateDatabasePassword may rotate
--
-- Idempotent: run it again after an upgrade. The sandbox (scripts/testbed) runs this same file.
-- What each grant is for:
--   pg_monitor            connection and statement statistics (pg_stat_activity, pg_stat_statements)
--   pg_signal_backend     dbConnectionExhaustion terminates idle sessions (never a superuser's)
--   ALTER SYSTEM ON PARAMETER max_connections, EXECUTE pg_reload_conf()   dbConnectionExhaustion
--   SELECT pg_file_settings   the value max_connections takes at the next restart (read for that name only)
--   CREATEDB + member of drill_role   monthlyReview's restore drill creates and drops its scratch
--                                     database owned by the drill role (PostgreSQL 15 asks for both)
--   member of table_owner  weeklyReview: VACUUM (ANALYZE) and CREATE INDEX CONCURRENTLY need the
--                          tables' owner in PostgreSQL 15 (no narrower grant exists before 17's MAINTAIN);
--                          deleting expired sessions
--   EXECUTE runbook.set_role_password   rotateDatabasePassword, for members of runbook_rotatable only,
--                                       instead of CREATEROLE (which could change any role's password)

SELECT set_config('runbook.table_owner', :'table_owner', false), set_config('runbook.drill_role', :'drill_role', false);

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runbook_worker') THEN CREATE ROLE runbook_worker; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runbook_rotatable') THEN CREATE ROLE runbook_rotatable; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runbook_password_admin') THEN CREATE ROLE runbook_password_admin; END IF;
  -- Membership in a superuser (or a role with more than table ownership) would make the worker one.
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN (current_setting('runbook.table_owner'), current_setting('runbook.drill_role'))
             AND (rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
    RAISE EXCEPTION 'table_owner and drill_role must be ordinary roles (no SUPERUSER, CREATEROLE, REPLICATION or BYPASSRLS)';
  END IF;
END $$;

ALTER ROLE runbook_worker LOGIN NOSUPERUSER NOCREATEROLE CREATEDB NOREPLICATION NOBYPASSRLS;
ALTER ROLE runbook_rotatable NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
ALTER ROLE runbook_password_admin NOLOGIN NOSUPERUSER CREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;

GRANT pg_monitor, pg_signal_backend TO runbook_worker;
GRANT ALTER SYSTEM ON PARAMETER max_connections TO runbook_worker;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO runbook_worker;
GRANT SELECT ON pg_catalog.pg_file_settings TO runbook_worker;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_all_file_settings() TO runbook_worker;
GRANT CONNECT ON DATABASE :"database" TO runbook_worker;
GRANT :"table_owner" TO runbook_worker;
GRANT :"drill_role" TO runbook_worker;

CREATE SCHEMA IF NOT EXISTS runbook;
REVOKE ALL ON SCHEMA runbook FROM PUBLIC;
GRANT USAGE ON SCHEMA runbook TO runbook_worker;

-- Sets a role's password from its SCRAM-SHA-256 verifier (never the password), for direct members
-- of runbook_rotatable only, never a superuser, a role that can create roles, replicate or bypass
-- row-level security, and never the caller. Runs as runbook_password_admin (CREATEROLE, no login).
CREATE OR REPLACE FUNCTION runbook.set_role_password(target name, verifier text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r record;
BEGIN
  SELECT oid, rolsuper, rolcreaterole, rolreplication, rolbypassrls INTO r FROM pg_roles WHERE rolname = target;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role % does not exist', target USING ERRCODE = '42704';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = 'runbook_rotatable' AND m.member = r.oid) THEN
    RAISE EXCEPTION 'role % is not a member of runbook_rotatable: its password is not rotated by runbooks (GRANT runbook_rotatable TO %)', target, target USING ERRCODE = '42501';
  END IF;
  IF r.rolsuper OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls THEN
    RAISE EXCEPTION 'role % is privileged (SUPERUSER, CREATEROLE, REPLICATION or BYPASSRLS): its password is rotated by hand', target USING ERRCODE = '42501';
  END IF;
  IF target = session_user THEN
    RAISE EXCEPTION 'role % is the caller''s own role', target USING ERRCODE = '42501';
  END IF;
  IF verifier !~ '^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$' THEN
    RAISE EXCEPTION 'not a SCRAM-SHA-256 verifier' USING ERRCODE = '22023';
  END IF;
  EXECUTE format('ALTER ROLE %I PASSWORD %L', target, verifier);
END
$fn$;
ALTER FUNCTION runbook.set_role_password(name, text) OWNER TO runbook_password_admin;
REVOKE ALL ON FUNCTION runbook.set_role_password(name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION runbook.set_role_password(name, text) TO runbook_worker;
