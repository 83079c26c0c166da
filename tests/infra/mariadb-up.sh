#!/bin/sh
# Throwaway MariaDB server for coffer's database tests.
#
# Installs Debian's mariadb-server when missing (it starts nothing by itself), creates a datadir
# under $MDB_BASE (default /tmp/coffer-mariadb) and runs mariadbd as root on a unix socket and
# 127.0.0.1:$MDB_PORT (default 13306).  --no-defaults keeps /etc/mysql out of it.
# Idempotent: when a server answers on the socket already, it is left running and reused.
# Prints the COFFER_TEST_MARIADB URL to export.  Stop it with mariadb-down.sh.
set -eu
BASE=${MDB_BASE:-/tmp/coffer-mariadb}
PORT=${MDB_PORT:-13306}
SOCK="$BASE/mysqld.sock"

if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing mariadb-server..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends mariadb-server >/dev/null
fi
PATH=$PATH:/usr/sbin:/usr/bin

if mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1; then
    echo "mariadbd already running on $SOCK"
else
    rm -rf "$BASE"; mkdir -p "$BASE/data"
    mariadb-install-db --no-defaults --user=root --datadir="$BASE/data" \
        --auth-root-authentication-method=normal --skip-test-db \
        > "$BASE/install.log" 2>&1
    mariadbd --no-defaults --user=root --datadir="$BASE/data" \
        --socket="$SOCK" --port="$PORT" --bind-address=127.0.0.1 \
        --pid-file="$BASE/mysqld.pid" --log-error="$BASE/error.log" \
        --skip-name-resolve --innodb-buffer-pool-size=128M --skip-log-bin \
        --max-allowed-packet=64M \
        > /dev/null 2>&1 &
    echo $! > "$BASE/launcher.pid"
    i=0
    until mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1; do
        i=$((i+1))
        if [ $i -gt 300 ] || ! kill -0 "$(cat "$BASE/launcher.pid")" 2>/dev/null; then
            echo "mariadbd failed to start" >&2; cat "$BASE/error.log" >&2; exit 1
        fi
        sleep 0.1
    done
    # root over TCP needs a password; give it a known one for the tests.
    mariadb --no-defaults --socket="$SOCK" -uroot -e \
        "CREATE USER IF NOT EXISTS 'coffer'@'127.0.0.1' IDENTIFIED BY 'coffer-test';
         GRANT ALL PRIVILEGES ON *.* TO 'coffer'@'127.0.0.1' WITH GRANT OPTION;
         CREATE USER IF NOT EXISTS 'coffer'@'localhost' IDENTIFIED BY 'coffer-test';
         GRANT ALL PRIVILEGES ON *.* TO 'coffer'@'localhost' WITH GRANT OPTION;"
    echo "mariadbd ready after ~$i x 0.1 s, pid $(cat "$BASE/launcher.pid")"
fi
echo "connect: mariadb --no-defaults --socket=$SOCK -uroot"
echo "tests:   export COFFER_TEST_MARIADB='mariadb://coffer:coffer-test@127.0.0.1:$PORT/'"
echo "   or:   export COFFER_TEST_MARIADB='mariadb://root@localhost/?socket=$SOCK'"
