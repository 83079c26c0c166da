#!/bin/bash
# sqlite_replicate.sh - `coffer replicate DB` while a writer commits numbered
# transfer transactions (sum of balances invariant), then point-in-time
# restores (`coffer restore --sqlite DB --time T --target F`), against a local
# repository and, when COFFER_TEST_S3 is set, against S3 (Swift s3api):
#  - restores at several whole seconds each pass integrity_check, hold the
#    sum, hold exactly transactions 1..k (no gap, no torn transaction), none
#    that began after the second, and every one that had committed 2 s (the
#    1 s interval + 1 s) before its end;
#  - kill -9 of the replicator, then a restart: the restart starts a new
#    generation; a restore as of the kill lacks at most the last interval
#    + 1 s; the latest restore after a clean SIGTERM (exit 0) has everything;
#  - a VACUUM that shrinks the database and a database file replaced under
#    its name (stale -wal/-shm removed, as a replacement must) each start a
#    new generation ("shrunk", "replaced") that restores with everything;
#  - an idle database makes no requests (local: no object added);
#  - `sqlite list` shows the generations; bad input fails with one line.
# Needs python3 with its sqlite3 module.
. "$(dirname "$0")/lib.sh"
e2e_setup
"$PY" -c 'import sqlite3' 2>/dev/null || skip "python3 sqlite3 module missing"
W=$(dirname "$0")/sqlite_writer.py

# check DB LOG END [SLACK]: the restored DB against the writer's log for
# the state as of END (epoch seconds); SLACK: how long before END a commit
# must have returned to be required (default 2 s)
check()
{
	"$PY" "$W" check "$@" || fail "restore as of $3 is wrong (see above)"
}

# start_rep REPO LOG: replicate $DB in the background, wait for its first generation
start_rep()
{
	COFFER_SQLITE_SYNC_INTERVAL=1 "$COFFER" -r "$1" replicate -v "$DB" >"$2" 2>&1 &
	REP=$!
	E2E_PIDS+=("$REP")
	wait_for grep -q "generation .* started" "$2" || { cat "$2"; fail "replicate did not start a generation"; }
}

# restore_at REPO SECOND(epoch) OUT
restore_at()
{
	cof -r "$1" restore --sqlite "$DB" --time "$(date -d "@$2" '+%Y-%m-%d %H:%M:%S')" --target "$3"
}

run_case()
{
	local R=$1 name=$2
	note "== $name"
	D=$T/$name
	mkdir -p "$D"
	DB=$D/app.db
	LOG=$D/writer.log
	: >"$LOG"
	"$PY" "$W" init "$DB"
	start_rep "$R" "$D/rep1.log"
	local t_begin
	t_begin=$(date +%s)
	"$PY" "$W" run "$DB" "$LOG" 1 500 0.01
	local t_end
	t_end=$(date +%s)
	sleep 2.5
	# restores at whole seconds across the run
	local t i=0
	for ((t = t_begin; t <= t_end + 1; t++)); do
		restore_at "$R" "$t" "$D/at-$t.db"
		check "$D/at-$t.db" "$LOG" "$t.999999"
		i=$((i + 1))
	done
	assert_le 3 "$i" "restores checked"
	# a restore into an existing file is refused, the file kept
	echo keep >"$D/exists"
	expect_exit 1 "$COFFER" -r "$R" restore --sqlite "$DB" --target "$D/exists"
	assert_one_line_err "exists"; assert_contains "$T/err" "exists" "error names it"
	assert_eq keep "$(cat "$D/exists")" "existing target untouched"
	# before the first generation: nothing to restore, said in one line
	expect_exit 1 "$COFFER" -r "$R" restore --sqlite "$DB" --time "2000-01-01 00:00:00" --target "$D/old.db"
	assert_one_line_err "starts at or before"; assert_contains "$T/err" "starts at or before" "error names it"
	[ ! -e "$D/old.db" ] || fail "a failed restore left $D/old.db"

	# kill -9 while the writer writes, then a restart
	"$PY" "$W" run "$DB" "$LOG" 501 300 0.01 &
	local WP=$!
	sleep 3
	kill -9 "$REP"
	wait "$REP" 2>/dev/null
	local t_kill
	t_kill=$(date +%s.%N)
	start_rep "$R" "$D/rep2.log"
	wait "$WP" || fail "writer failed"
	sleep 2.5
	# as of the kill: the killed replicator's generation (the new one starts later)
	local ks=${t_kill%.*}
	restore_at "$R" "$ks" "$D/kill.db"
	check "$D/kill.db" "$LOG" "$ks.999999" 2.0
	grep -q "generation .* started (start)" "$D/rep2.log" || fail "the restart did not start a generation"

	# an idle database: no object written during 3 intervals
	if [ "${R#s3:}" = "$R" ]; then
		sleep 1.5
		local before after
		before=$(find "$R" -type f | wc -l)
		sleep 3.5
		after=$(find "$R" -type f | wc -l)
		assert_eq "$before" "$after" "objects in the repository across 3.5 s idle"
	fi

	# VACUUM that shrinks the database: a new generation
	"$PY" - "$DB" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("create table junk(x)")
c.executemany("insert into junk values(?)", [("y" * 4000,) for _ in range(300)])
c.execute("drop table junk")
c.execute("vacuum")
EOF
	wait_for grep -q "started (shrunk)" "$D/rep2.log" || { cat "$D/rep2.log"; fail "VACUUM did not start a generation"; }
	"$PY" "$W" run "$DB" "$LOG" 801 50 0.01

	# the database file replaced under its name (the application stopped,
	# the stale -wal/-shm removed: a replaced database must not meet them)
	"$PY" - "$DB" <<'EOF'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[1] + ".new")
src.backup(dst); src.close(); dst.close()
EOF
	mv "$DB.new" "$DB"
	rm -f "$DB-wal" "$DB-shm"
	"$PY" "$W" run "$DB" "$LOG" 851 50 0.01
	wait_for grep -q "started (replaced)" "$D/rep2.log" || { cat "$D/rep2.log"; fail "a replaced file did not start a generation"; }
	"$PY" "$W" run "$DB" "$LOG" 901 50 0.01
	sleep 2
	kill -TERM "$REP"
	wait "$REP"
	assert_eq 0 "$?" "replicate exit code after SIGTERM"
	cof -r "$R" restore --sqlite "$DB" --target "$D/latest.db"
	check "$D/latest.db" "$LOG" "$(date +%s)" 0
	assert_eq 950 "$(sqlite3 "$D/latest.db" 'select count(*) from log' 2>/dev/null ||
		"$PY" -c "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select count(*) from log').fetchone()[0])" "$D/latest.db")" \
		"transactions in the latest restore"
	cof -r "$R" sqlite list "$DB"
	cp "$T/out" "$D/list"
	for why in start shrunk replaced; do
		assert_contains "$D/list" "($why)" "sqlite list names a generation ($why)"
	done
	cof -r "$R" --json sqlite list "$DB"
	assert_le 4 "$(json_field "$T/out" 'len(j)')" "generations in sqlite list --json"
}

R=$T/repo
init_repo "$R"
expect_exit 1 "$COFFER" -r "$R" replicate
assert_one_line_err "give the SQLite database"; assert_contains "$T/err" "give the SQLite database" "error names it"
expect_exit 1 "$COFFER" -r "$R" replicate "$T/nope.db"
assert_one_line_err "nope.db"; assert_contains "$T/err" "nope.db" "error names it"
expect_exit 1 "$COFFER" -r "$R" sqlite frobnicate
assert_one_line_err "unknown subcommand"; assert_contains "$T/err" "unknown subcommand" "error names it"
run_case "$R" local

if [ -n "${COFFER_TEST_S3:-}" ] && [ -n "${AWS_ACCESS_KEY_ID:-}" ]; then
	endpoint=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^(https?://[^/]+)/.*#\1#')
	base=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^https?://[^/]+/([^/]+).*#\1#')
	bucket=$(printf '%.40s-sr-%s' "$base" "$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')")
	S=s3:$endpoint/$bucket/repo
	init_repo "$S"
	run_case "$S" s3
else
	note "COFFER_TEST_S3 not set: the S3 half is skipped"
fi
e2e_done
