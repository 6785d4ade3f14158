#!/bin/sh
# PostgreSQL 15 in a pod of the test bed's real node (image "postgres", scripts/testbed/node/node-images.ts).
# The first start initialises the data directory on the pod's volume: superuser "postgres" with the
# password in the file POSTGRES_PASSWORD_FILE (a mounted Secret), password logins over TCP,
# pg_stat_statements; pg_hba.conf keeps the restore drill's role (DRILL_ROLE) out of production.
# Every start then runs the server in the foreground as PID 1. Settings changed with ALTER SYSTEM
# live on the volume and apply from the next start, as in production.
set -eu
PGDATA="${PGDATA:-/var/lib/postgresql/data/pgdata}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U postgres --pwfile="$POSTGRES_PASSWORD_FILE" --auth-local=trust --auth-host=scram-sha-256 \
    --no-locale -E UTF8 --no-instructions
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  {
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/tmp'"
    echo "shared_preload_libraries = 'pg_stat_statements'"
    # As the host's server: statements inside functions and DO blocks counted too; and a test bed's
    # speed over durability on power loss (clean shutdowns and restarts lose nothing).
    echo "pg_stat_statements.track = all"
    echo "fsync = off"
  } >>"$PGDATA/postgresql.conf"
fi
if [ -n "${DRILL_ROLE:-}" ]; then
  # The restore drill's role only in its scratch databases (DRILL_REJECTED_DATABASES rejected): first
  # match wins, so before initdb's lines; once per data directory, on a volume made before too.
  marker="# restore drill: ${DRILL_ROLE} only in its scratch databases"
  IFS= read -r first <"$PGDATA/pg_hba.conf" || first=""
  if [ "$first" != "$marker" ]; then
    {
      echo "$marker"
      echo "local ${DRILL_REJECTED_DATABASES} ${DRILL_ROLE} reject"
      echo "host ${DRILL_REJECTED_DATABASES} ${DRILL_ROLE} all reject"
      cat "$PGDATA/pg_hba.conf"
    } >"$PGDATA/pg_hba.conf.new"
    mv "$PGDATA/pg_hba.conf.new" "$PGDATA/pg_hba.conf"
  fi
fi
exec postgres -D "$PGDATA"
