#!/bin/bash
# db_sqlite.sh - `backup --sqlite DB` of a database that a writer process
# keeps changing (WAL mode, 7-row transactions) while the backup runs:
#  - the snapshot holds DB under its own path, and no DB-wal / DB-shm;
#  - the writer was not blocked: it committed during the backup;
#  - the restored copy passes PRAGMA integrity_check and holds exactly rows
#    1..N, N a multiple of 7 (whole transactions, no gap), with N between
#    the writer's count before and after the backup;
#  - a normal file restore (--target / --include DB) replaces the original
#    file atomically: a new inode renamed into place, a reader that had the
#    old file open still reads the old bytes, no temp file left behind, and
#    the file keeps its permission bits.
# Needs python3 with its sqlite3 module.
. "$(dirname "$0")/lib.sh"
e2e_setup
"$PY" -c 'import sqlite3' 2>/dev/null || skip "python3 sqlite3 module missing"

R=$T/repo
init_repo "$R"
D=$T/app
mkdir -p "$D"
DB=$D/app.db

# ~40 MB to begin with, so the copy takes long enough for the writer to
# commit while it runs
"$PY" - "$DB" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, txn INTEGER NOT NULL, pad BLOB NOT NULL)")
with c:
    c.execute("""WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 70000)
                 INSERT INTO t SELECT i, (i-1)/7, randomblob(500) FROM s""")
c.close()
EOF
chmod 640 "$DB"

# the writer: 7-row transactions, each committed whole, ids consecutive;
# it prints its committed row count to $T/count after every commit
cat > "$T/writer.py" <<'EOF'
import os, signal, sqlite3, sys
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
n = c.execute("SELECT count(*) FROM t").fetchone()[0]
while not stop:
    c.execute("BEGIN IMMEDIATE")
    for k in range(7):
        c.execute("INSERT INTO t VALUES (?, ?, randomblob(500))", (n + k + 1, n // 7))
    c.execute("COMMIT")
    n += 7
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
c.close()  # the last connection checkpoints and removes -wal/-shm
EOF
"$PY" "$T/writer.py" "$DB" "$T/count" &
WRITER=$!
E2E_PIDS+=("$WRITER")
wait_for test -s "$T/count" || fail "writer did not start"
wait_for sh -c "[ \$(cat $T/count) -ge 71400 ]" || fail "writer too slow"
[ -e "$DB-wal" ] || soft_fail "no $DB-wal while the writer runs (is WAL mode on?)"

before=$(cat "$T/count")
cof -r "$R" backup --sqlite "$DB"
after=$(cat "$T/count")
kill -0 "$WRITER" 2>/dev/null || fail "writer died during the backup"
note "writer had $before rows before the backup, $after after"
[ "$after" -gt "$before" ] || soft_fail "the writer committed nothing during the backup (blocked?)"

# stop the writer cleanly: its close checkpoints the WAL into app.db
kill -TERM "$WRITER"
wait "$WRITER"
final=$(cat "$T/count")
[ ! -e "$DB-wal" ] || fail "writer left $DB-wal behind"

cof -r "$R" ls latest
assert_contains "$T/out" "$DB" "ls shows the database under its own path"
assert_not_contains "$T/out" "app.db-wal" "-wal is not stored"
assert_not_contains "$T/out" "app.db-shm" "-shm is not stored"
check_eq 1 "$(grep -c "^$D/" "$T/out")" "entries stored under $D (the database only)"
assert_eq "" "$(ls -A "$D" | grep -v '^app\.db$')" "the temporary copy is removed after the backup"

check_restored()  # FILE: integrity, whole-transaction prefix; prints N
{
	"$PY" - "$1" <<'EOF'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
ok = c.execute("PRAGMA integrity_check").fetchall()
if ok != [("ok",)]:
    sys.exit("integrity_check: %r" % ok)
n, lo, hi = c.execute("SELECT count(*), min(id), max(id) FROM t").fetchone()
if lo != 1 or hi != n:
    sys.exit("rows are not 1..N: count %d, min %s, max %s" % (n, lo, hi))
if n % 7:
    sys.exit("%d rows: a transaction was copied in part" % n)
bad = c.execute("SELECT count(*) FROM t WHERE txn != (id-1)/7").fetchone()[0]
if bad:
    sys.exit("%d rows with a wrong txn number" % bad)
print(n)
EOF
}

# 1. restore to another directory
cof -r "$R" restore latest --target "$T/r1"
# checked before anything opens the copy (opening a WAL database makes them)
[ ! -e "$T/r1/$DB-wal" ] && [ ! -e "$T/r1/$DB-shm" ] || soft_fail "a -wal or -shm file was restored"
n=$(check_restored "$T/r1/$DB") || fail "restored copy is not a consistent database"
note "restored copy holds $n rows"
[ "$n" -ge "$before" ] && [ "$n" -le "$after" ] ||
	soft_fail "restored $n rows, not between $before (before) and $after (after the backup)"
[ "$n" -lt "$final" ] || soft_fail "restored $n rows, the writer's later rows ($final) should be absent"

# 2. restore over the original path: temp file + rename
ino_old=$(stat -c %i "$DB")
sha_old=$(sha256sum < "$DB" | cut -d' ' -f1)
exec 9< "$DB"           # a reader holding the old file open
# (an open database is refused without --force since issue 25: restore_sqlite_live.sh)
expect_exit 1 "$COFFER" -r "$R" restore latest --target / --include "$DB"
assert_contains "$T/err" "is open in process" "an open database is refused"
cof -r "$R" restore latest --target / --include "$DB" --force
ino_new=$(stat -c %i "$DB")
[ "$ino_old" != "$ino_new" ] || soft_fail "the file was rewritten in place (same inode), not renamed into place"
check_eq "$sha_old" "$(sha256sum <&9 | cut -d' ' -f1)" "the old file, still open, is unchanged"
exec 9<&-
check_eq "$(sha256sum < "$T/r1/$DB" | cut -d' ' -f1)" "$(sha256sum < "$DB" | cut -d' ' -f1)" \
	"file restored in place equals the one restored elsewhere"
assert_eq "" "$(ls -A "$D" | grep -v '^app\.db$')" "no temp file left next to the restored database"
n2=$(check_restored "$DB") || fail "database restored in place is not consistent"
check_eq "$n" "$n2" "rows in the database restored in place"
check_eq 640 "$(stat -c %a "$DB")" "permission bits of the restored database"

# 3. a rollback-journal database, and errors
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("CREATE TABLE k(v)"); c.execute("INSERT INTO k VALUES (42)"); c.commit()' "$T/plain.db"
cof -r "$R" backup --sqlite "$T/plain.db" "$T/app"
cof -r "$R" restore latest --target "$T/r3"
check_eq 42 "$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT v FROM k").fetchone()[0])' "$T/r3/$T/plain.db")" \
	"rollback-journal database restored"

expect_exit 1 "$COFFER" -r "$R" backup --sqlite "$T/missing.db"
assert_contains "$T/err" "missing.db" "missing database named"
head -c 10000 /dev/zero | tr '\0' 'x' > "$T/notadb"
expect_exit 1 "$COFFER" -r "$R" backup --sqlite "$T/notadb"
assert_contains "$T/err" "notadb" "a file that is not a database is named"
assert_one_line_err "not a database"
assert_eq "" "$(ls -A "$T" | grep coffer)" "no temporary copy left after a failed snapshot"

e2e_done
