#!/bin/bash
# restore_sqlite_live.sh - an SQLite restore next to a live -wal is not
# silently undone (issue 25, item 1): with a writer process holding the
# database open in WAL mode and a non-empty -wal beside it, `restore
# --include` and `restore --all` of a file the snapshot records as SQLite
# are refused with exit 1 and one line naming the -wal and --force, the
# database untouched; with --force the -wal/-shm go with the swap and a new
# connection reads exactly the snapshot's rows (without the guard it read
# the old WAL's rows replayed onto the new file).
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/app"
DBF=$T/app/app.db
rows() { "$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from t").fetchone()[0])' "$1"; }
"$PY" -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("pragma journal_mode=wal")
c.execute("create table t(x)"); c.executemany("insert into t values (?)", [(i,) for i in range(9310)]); c.commit()' "$DBF" ||
	fail "cannot make the database"
mkdir -p "$T/vol"
echo v > "$T/vol/f"
cof -r "$R" backup "$T/vol" --sqlite "$DBF"

# the application: deletes most rows (into the -wal, never checkpointed) and
# keeps the database open until told to go
mkfifo "$T/go"
"$PY" -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("pragma wal_autocheckpoint=0")
c.execute("delete from t where x >= 1392"); c.commit()
open(sys.argv[2] + ".ready", "w").close()
open(sys.argv[2]).read()' "$DBF" "$T/go" &
WRITER=$!
E2E_PIDS+=($WRITER)
ready() { [ -e "$T/go.ready" ]; }
wait_for ready || fail "the writer did not start"
[ -s "$DBF-wal" ] || fail "no -wal beside the database"
assert_eq 1392 "$(rows "$DBF")" "rows the live application sees"
sha() { sha256sum "$1" | cut -d' ' -f1; }
BEFORE="$(sha "$DBF") $(sha "$DBF-wal")"

# --- plain restore --include: refused, untouched
expect_exit 1 "$COFFER" -r "$R" restore latest --target / --include "$DBF"
assert_one_line_err "an SQLite file in use"
assert_contains "$T/err" "$DBF-wal" "the refusal names the -wal"
assert_contains "$T/err" "--force" "the refusal says what to do"
check_eq "$BEFORE" "$(sha "$DBF") $(sha "$DBF-wal")" "the database and its -wal after the refusal"

# --- restore --all: refused likewise (no containers hold it here)
expect_exit 1 env COFFER_DOCKER_HOST=none "$COFFER" -r "$R" restore latest --all --yes
assert_contains "$T/err" "$DBF-wal" "--all: the refusal names the -wal"
check_eq "$BEFORE" "$(sha "$DBF") $(sha "$DBF-wal")" "the database and its -wal after the --all refusal"

# --- --force: the -wal/-shm go with the swap; the snapshot's rows are read
cof -r "$R" restore latest --target / --include "$DBF" --force
[ ! -e "$DBF-wal" ] || soft_fail "the -wal is still beside the restored database"
[ ! -e "$DBF-shm" ] || soft_fail "the -shm is still beside the restored database"
ls "$T/app" | grep -q coffer-replaced && soft_fail "side files left: $(ls "$T/app")"
check_eq 9310 "$(rows "$DBF")" "rows after restore --force (the snapshot's)"
echo > "$T/go"
wait $WRITER
check_eq 9310 "$(rows "$DBF")" "rows after the application closed"

# --- --all --force likewise, with a fresh writer
rm -f "$T/go.ready"
"$PY" -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("pragma wal_autocheckpoint=0")
c.execute("delete from t where x >= 100"); c.commit()
open(sys.argv[2] + ".ready", "w").close()
open(sys.argv[2]).read()' "$DBF" "$T/go" &
WRITER=$!
E2E_PIDS+=($WRITER)
wait_for ready || fail "the second writer did not start"
assert_eq 100 "$(rows "$DBF")" "rows the second application sees"
expect_exit 0 env COFFER_DOCKER_HOST=none "$COFFER" -r "$R" restore latest --all --yes --force
[ ! -e "$DBF-wal" ] || soft_fail "--all --force: the -wal is still there"
check_eq 9310 "$(rows "$DBF")" "rows after restore --all --force"
echo > "$T/go"
wait $WRITER

e2e_done
