#!/bin/sh
# Throwaway PostgreSQL 15 server for coffer's database tests.
#
# Installs Debian's postgresql-15 when missing (it starts nothing by itself: the packaged
# cluster is not used), runs initdb into $PG_BASE/data (default /tmp/coffer-postgres) and
# starts postgres on a unix socket in $PG_BASE and 127.0.0.1:$PG_PORT (default 15432).
# postgres refuses to run as root, so as root it runs as the `postgres` system user (the
# package's) or else `nobody`, owning $PG_BASE.  Password authentication (scram-sha-256) over
# TCP; a superuser coffer / coffer-test for the tests.
# Idempotent: when a server answers on the socket already, it is left running and reused.
# Prints the COFFER_TEST_POSTGRES URL to export.  Stop it with pg-down.sh.
set -eu
BASE=${PG_BASE:-/tmp/coffer-postgres}
PORT=${PG_PORT:-15432}
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

if [ ! -x "$BIN/postgres" ]; then
    echo "installing postgresql-15..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
        postgresql-15 postgresql-client-15 >/dev/null
fi

# run a command as the server's user
if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then RUNAS=postgres; else RUNAS=nobody; fi
    as() { setpriv --reuid="$RUNAS" --regid="$(id -g "$RUNAS")" --clear-groups -- "$@"; }
else
    RUNAS=$(id -un)
    as() { "$@"; }
fi

if as "$BIN/pg_ctl" -D "$BASE/data" status >/dev/null 2>&1 &&
   psql -X -q -h "$BASE" -p "$PORT" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    echo "postgres already running in $BASE"
else
    rm -rf "$BASE"; mkdir -p "$BASE"
    as test -x "$BASE/.." ||
        { echo "pg-up.sh: $RUNAS cannot enter $(dirname "$BASE") (chmod o+x it)" >&2; exit 1; }
    chown "$RUNAS" "$BASE"; chmod 0700 "$BASE"
    printf 'postgres-test\n' > "$BASE/pwfile"; chown "$RUNAS" "$BASE/pwfile"
    as "$BIN/initdb" -D "$BASE/data" -U postgres --pwfile="$BASE/pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 > "$BASE/initdb.log" 2>&1 ||
        { echo "initdb failed" >&2; cat "$BASE/initdb.log" >&2; exit 1; }
    rm -f "$BASE/pwfile"
    # small: several test servers share the machine
    as "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$BASE \
            -c shared_buffers=64MB -c max_connections=40 -c fsync=off -c full_page_writes=off \
            -c synchronous_commit=off" start >/dev/null ||
        { echo "postgres failed to start" >&2; cat "$BASE/server.log" >&2; exit 1; }
    # the socket directory is the server user's: let the (root) tests reach it
    chmod 0755 "$BASE"
    psql -X -q -v ON_ERROR_STOP=1 -h "$BASE" -p "$PORT" -U postgres -d postgres \
        -c "CREATE ROLE coffer LOGIN SUPERUSER PASSWORD 'coffer-test'" >/dev/null
    echo "postgres ready in $BASE (user $RUNAS)"
fi
echo "connect: psql -h $BASE -p $PORT -U postgres"
echo "tests:   export COFFER_TEST_POSTGRES='postgres://coffer:coffer-test@127.0.0.1:$PORT/'"
