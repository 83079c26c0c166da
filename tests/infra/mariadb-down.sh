#!/bin/sh
# Stops the server started by mariadb-up.sh and waits for it to exit; keeps the datadir
# (mariadb-up.sh recreates it).
BASE=${MDB_BASE:-/tmp/coffer-mariadb}
PATH=$PATH:/usr/sbin:/usr/bin
mariadb-admin --no-defaults --socket="$BASE/mysqld.sock" -uroot shutdown 2>/dev/null || \
  { [ -f "$BASE/mysqld.pid" ] && kill "$(cat "$BASE/mysqld.pid")"; }
PID=$(cat "$BASE/launcher.pid" 2>/dev/null || true)
i=0; while [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "stopped"
