#!/usr/bin/env bash
# make-golden-replica.sh [COFFER] - how tests/golden/repo-replica was made: a
# repository holding one replicated SQLite generation (issue 21;
# doc/repo-format.md, "SQLite replication"): the base copy of an empty
# table (a snapshot tagged sqlite-replica), then 20 transactions, each
# inserting row n, in segments.  NOT run by the tests (written once, read by
# every later version: tests/e2e/sqlite_replica_golden.sh checks that
# `sqlite list --json` still shows what repo-replica.json recorded and that
# restores as of the base and of the last transaction give 0 and 20 rows).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
coffer=${1:-${COFFER:-$here/../../build/coffer}}
[ -x "$coffer" ] || { echo "usage: $0 PATH-TO-COFFER" >&2; exit 2; }
coffer=$(cd "$(dirname "$coffer")" && pwd)/$(basename "$coffer")

work=/tmp/coffer-golden-replica     # the database's path is recorded: keep it
rm -rf "$work"
mkdir -p "$work"
python3 - "$work/app.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("pragma journal_mode=wal")
c.execute("create table log(n integer primary key)")
c.commit()
PY
printf 'golden\n' > "$work/password"
export COFFER_PASSWORD_FILE=$work/password TZ=UTC COFFER_CACHE_DIR=off
unset COFFER_REPOSITORY COFFER_PASSWORD
"$coffer" -r "$work/repo" init --kdf-passes 1 --kdf-memory 64
"$coffer" -r "$work/repo" replicate --host golden "$work/app.db" 2> "$work/rep.log" &
rep=$!
until grep -q "generation .* started" "$work/rep.log"; do sleep 0.1; done
python3 - "$work/app.db" <<'PY'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
for n in range(1, 21):
    c.execute("insert into log values (?)", (n,))
    time.sleep(0.1)
PY
sleep 2
kill -TERM "$rep"
wait "$rep"
"$coffer" -r "$work/repo" --json sqlite list "$work/app.db" > "$work/list.json"

rm -rf "$work/repo/locks"
find "$work/repo" -type d -empty -delete
rm -rf "$here/repo-replica"
cp -r "$work/repo" "$here/repo-replica"
cp "$work/list.json" "$here/repo-replica.json"
chmod -R u=rwX,go=rX "$here/repo-replica"
du -sh "$here/repo-replica"
echo "wrote $here/repo-replica and $here/repo-replica.json; now run tests/e2e/sqlite_replica_golden.sh"
