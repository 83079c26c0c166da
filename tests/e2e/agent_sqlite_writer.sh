#!/bin/bash
# agent_sqlite_writer.sh - issue 21's "done when" test under the agent: a
# writer commits numbered transfer transactions (the sum of balances is
# invariant; the writer logs when each began and when its COMMIT returned)
# for COFFER_TEST_WRITER_SECONDS (default 40) while `coffer agent` replicates
# the database (COFFER_SQLITE_REPLICATE, 1 s interval) into S3 (Swift s3api,
# COFFER_TEST_S3) or, without it, a local repository; then
#  - restores at 20 random whole seconds of the run (the seed is printed)
#    each pass integrity_check, hold the sum, hold exactly transactions 1..k,
#    none begun after the second, and every one whose COMMIT returned
#    interval + 1 s before its end (the replicator stamps a transaction when
#    it reads it, every 100 ms, and stores it within the interval);
#  - kill -9 of the agent while the writer writes: the latest restore lacks
#    at most the transactions of the last interval + 1 s before the kill;
#  - a restarted agent starts a new generation and the latest restore after
#    its clean stop holds every transaction.
. "$(dirname "$0")/lib.sh"
e2e_setup
"$PY" -c 'import sqlite3' 2>/dev/null || skip "python3 sqlite3 module missing"
W=$(dirname "$0")/sqlite_writer.py
SECS=${COFFER_TEST_WRITER_SECONDS:-40}
INTERVAL=1

# check DB LOG END SLACK (as in sqlite_replicate.sh)
check()
{
	"$PY" "$W" check "$@" || { soft_fail "restore as of $3 is wrong (see above)"; return 1; }
}

mkdir -p "$T/data" "$T/files" "$T/state"
echo hello >"$T/files/f"
DB=$T/data/app.db
LOG=$T/writer.log
: >"$LOG"
"$PY" "$W" init "$DB"
if [ -n "${COFFER_TEST_S3:-}" ] && [ -n "${AWS_ACCESS_KEY_ID:-}" ]; then
	R=s3:$COFFER_TEST_S3/agent-writer-$$
	note "against $R"
else
	R=$T/repo
	note "COFFER_TEST_S3 is not set: against a local repository"
fi
init_repo "$R"
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_PATHS="$T/files" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none
      COFFER_CACHE_DIR="$T/cache" COFFER_HOST=testhost COFFER_VERBOSE=1 COFFER_SCHEDULE=@yearly
      COFFER_SQLITE_REPLICATE="$DB" COFFER_SQLITE_SYNC_INTERVAL=$INTERVAL
      AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-}"
      AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}")
start_agent()  # LOGFILE
{
	env -i "${AENV[@]}" "$COFFER" agent >/dev/null 2>"$1" &
	A=$!
	E2E_PIDS+=("$A")
	wait_until 60 grep -q "generation .* started" "$1" || { cat "$1"; fail "the agent started no generation"; }
}

start_agent "$T/a1.err"
t_begin=$(date +%s)
"$PY" "$W" run "$DB" "$LOG" 1 100000000 0.005 "$T/stop1" &
WP=$!
E2E_PIDS+=("$WP")
sleep "$SECS"
touch "$T/stop1"
wait "$WP" || fail "writer failed"
t_end=$(date +%s)
ntx=$(wc -l <"$LOG")
note "writer: $ntx transactions in $((t_end - t_begin)) s"
sleep $((INTERVAL + 1))
SEED=${COFFER_TEST_SEED:-$RANDOM}
note "random seconds from seed $SEED"
secs=$("$PY" -c 'import random,sys; r=random.Random(int(sys.argv[1])); print(" ".join(str(t) for t in sorted(r.sample(range(int(sys.argv[2]), int(sys.argv[3]) + 1), 20))))' \
	"$SEED" "$t_begin" "$t_end")
n=0
for t in $secs; do
	"$COFFER" -q -r "$R" restore --sqlite "$DB" --time "$(date -d "@$t" '+%Y-%m-%d %H:%M:%S')" --target "$T/at-$t.db" ||
		{ soft_fail "restore as of $t failed"; continue; }
	check "$T/at-$t.db" "$LOG" "$t.999999" $((INTERVAL + 1)) && n=$((n + 1))
	rm -f "$T/at-$t.db"
done
check_eq 20 "$n" "random-second restores that are exact"

# kill -9 while the writer writes
"$PY" "$W" run "$DB" "$LOG" $((ntx + 1)) 100000000 0.005 "$T/stop2" &
WP=$!
E2E_PIDS+=("$WP")
sleep 5
kill -9 "$A"
t_kill=$(date +%s.%N)
wait "$A" 2>/dev/null
"$COFFER" -q -r "$R" restore --sqlite "$DB" --target "$T/kill.db" || fail "latest restore after kill -9 failed"
check "$T/kill.db" "$LOG" "$t_kill" $((INTERVAL + 1))
# a restart: a new generation, and everything after a clean stop
start_agent "$T/a2.err"
sleep 3
touch "$T/stop2"
wait "$WP" || fail "writer failed"
kill -TERM "$A"
wait "$A"
check_eq 0 $? "agent exit after SIGTERM"
"$COFFER" -q -r "$R" restore --sqlite "$DB" --target "$T/last.db" || fail "latest restore failed"
check "$T/last.db" "$LOG" "$(date +%s.%N)" 0
e2e_done
