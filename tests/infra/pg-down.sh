#!/bin/sh
# Stops the server started by pg-up.sh and waits for it to exit; keeps the data directory
# (pg-up.sh recreates it).
BASE=${PG_BASE:-/tmp/coffer-postgres}
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
[ -d "$BASE/data" ] || { echo "stopped"; exit 0; }
OWNER=$(stat -c %U "$BASE/data")
if [ "$(id -u)" = 0 ] && [ "$OWNER" != root ]; then
    setpriv --reuid="$OWNER" --regid="$(id -g "$OWNER")" --clear-groups -- \
        "$BIN/pg_ctl" -D "$BASE/data" -m fast -w -t 60 stop >/dev/null 2>&1
else
    "$BIN/pg_ctl" -D "$BASE/data" -m fast -w -t 60 stop >/dev/null 2>&1
fi
echo "stopped"
