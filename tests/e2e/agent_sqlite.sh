#!/bin/bash
# agent_sqlite.sh - the agent replicates COFFER_SQLITE_REPLICATE databases
# continuously (issue 21), while a writer commits numbered transfer
# transactions (the sum of balances is invariant):
#  - the keys are shown by --print-config and bad values refused in one line;
#    `agent --once` does not replicate (and says so);
#  - a clean SIGTERM stores the last interval: with a 30 s interval nothing is
#    stored before the stop, yet the latest restore holds every transaction;
#  - a scheduled job (made up at start by COFFER_RUN_MISSED) writes its
#    snapshot (holding the database as COFFER_SQLITE copies it) and the
#    replicator then starts a new generation "backup"; restores at whole
#    seconds across both generations are exact (a transaction is required
#    once it committed interval + 1 s before the time);
#  - metrics served and in coffer-sqlite.prom pass promtool, with
#    coffer_sqlite_replication_lag_seconds{db="app"} and the last-upload
#    gauge; the healthcheck is healthy while following;
#  - retention: with COFFER_KEEP_LAST=1 a job removes the generations that
#    end before the one snapshot kept (and their base snapshots), prune and
#    check pass, a restore to a kept time is still exact and an older time
#    is refused as not restorable;
#  - a store outage (S3 through tests/infra/faultproxy.py, stopped and
#    started again): a short one queues segments in memory and loses
#    nothing (restores during it are exact); a long one overflows
#    COFFER_SQLITE_QUEUE_BYTES: the healthcheck turns unhealthy (lag over
#    COFFER_SQLITE_MAX_LAG), the webhook gets coffer.sqlite.failed, the read
#    transaction is released so the application's WAL stays within SQLite's
#    autocheckpoint (1000 pages) instead of growing with the writes; when
#    the store is back a new generation "outage" starts
#    (coffer.sqlite.recovered) and the latest restore holds everything.
. "$(dirname "$0")/lib.sh"
e2e_setup
"$PY" -c 'import sqlite3' 2>/dev/null || skip "python3 sqlite3 module missing"
W=$(dirname "$0")/sqlite_writer.py

# check DB LOG END [SLACK]: the restored DB against the writer's log for the
# state as of END (epoch seconds): integrity_check, the sum, exactly 1..k,
# none begun after END, every one committed SLACK s before END present
check()
{
	"$PY" "$W" check "$@" || { soft_fail "restore as of $3 is wrong (see above)"; return 1; }
}

restore_at()  # REPO SECOND OUT
{
	"$COFFER" -q -r "$1" restore --sqlite "$DB" --time "$(date -d "@$2" '+%Y-%m-%d %H:%M:%S')" --target "$3"
}

restore_latest()  # REPO OUT
{
	"$COFFER" -q -r "$1" restore --sqlite "$DB" --target "$2"
}

mkdir -p "$T/data" "$T/files" "$T/state"
echo hello >"$T/files/f"
DB=$T/data/app.db
LOG=$T/writer.log
: >"$LOG"
"$PY" "$W" init "$DB"
R=$T/repo
init_repo "$R"
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_PATHS="$T/files" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none
      COFFER_CACHE_DIR="$T/cache" COFFER_HOST=testhost COFFER_VERBOSE=1
      COFFER_SQLITE="$DB" COFFER_SQLITE_REPLICATE="$DB")

# --- configuration ----------------------------------------------------------
env -i "${AENV[@]}" "$COFFER" agent --print-config >"$T/cfg" 2>&1 || fail "print-config failed"
for kv in "COFFER_SQLITE_REPLICATE=$DB" COFFER_SQLITE_SYNC_INTERVAL=1 COFFER_SQLITE_MAX_LAG=60 \
	COFFER_SQLITE_RETENTION=snapshots COFFER_SQLITE_QUEUE_BYTES=64M; do
	assert_contains "$T/cfg" "$kv" "print-config shows $kv"
done
for bad in COFFER_SQLITE_SYNC_INTERVAL=0 COFFER_SQLITE_SYNC_INTERVAL=fast COFFER_SQLITE_MAX_LAG=0 \
	COFFER_SQLITE_RETENTION=forever COFFER_SQLITE_QUEUE_BYTES=12X COFFER_SQLITE_REPLICATE=data/app.db; do
	expect_exit 1 env -i "${AENV[@]}" "$bad" "$COFFER" agent --print-config
	assert_one_line_err "${bad%%=*}"
done

# --- agent --once does not replicate ----------------------------------------
expect_exit 0 env -i "${AENV[@]}" "$COFFER" agent --once
assert_contains "$T/err" "does not replicate" "--once says it does not replicate"
"$COFFER" -r "$R" sqlite list "$DB" >"$T/list0"
assert_contains "$T/list0" "not replicated" "no generation after --once"

# --- a clean stop stores the last interval -----------------------------------
env -i "${AENV[@]}" COFFER_SCHEDULE=@yearly COFFER_SQLITE_SYNC_INTERVAL=30 "$COFFER" agent \
	>"$T/a1.out" 2>"$T/a1.err" &
A=$!
E2E_PIDS+=("$A")
wait_until 60 grep -q "generation .* started (start)" "$T/a1.err" || { cat "$T/a1.err"; fail "no generation started"; }
"$PY" "$W" run "$DB" "$LOG" 1 200 0
kill -TERM "$A"
wait "$A"
check_eq 0 $? "agent exit after SIGTERM"
grep -q "segment .* stored" "$T/a1.err" || fail "nothing stored at the stop"
restore_latest "$R" "$T/r1.db" || fail "restore after the clean stop failed"
check "$T/r1.db" "$LOG" "$(date +%s.%N)" 0

# --- following, a scheduled job's new base, metrics, healthcheck -------------
command -v curl >/dev/null || skip "curl is not installed"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# a tick two hours ago was missed: the job runs at start (COFFER_RUN_MISSED)
"$PY" - "$T/state/state.json" <<'EOF'
import json, sys, time
p = sys.argv[1]
st = json.load(open(p))
st["agent"]["last_tick_unix"] = int(time.time()) - 7200
json.dump(st, open(p, "w"))
EOF
snaps_before=$("$COFFER" -r "$R" snapshots --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
"$PY" "$W" run "$DB" "$LOG" 201 100000 0.01 "$T/stop2" &
WP=$!
E2E_PIDS+=("$WP")
t_w2=$(date +%s)
env -i "${AENV[@]}" COFFER_SCHEDULE=@hourly COFFER_RUN_MISSED=1 COFFER_METRICS_LISTEN="127.0.0.1:$PORT" \
	COFFER_METRICS_FILE="$T/m/coffer.prom" "$COFFER" agent >"$T/a2.out" 2>"$T/a2.err" &
A=$!
E2E_PIDS+=("$A")
mkdir -p "$T/m"
wait_until 120 grep -q "generation .* started (backup)" "$T/a2.err" ||
	{ cat "$T/a2.err"; fail "the scheduled job was not followed by a new generation (backup)"; }
wait_until 60 grep -q "result=" "$T/a2.err"  # the job reports after its snapshot, which may start the generation first
grep -q "result=success" "$T/a2.err" || { cat "$T/a2.err" >&2; fail "the scheduled job did not succeed"; }
sleep 3
curl -sf "http://127.0.0.1:$PORT/metrics" >"$T/served.prom" || fail "no metrics served"
assert_contains "$T/served.prom" 'coffer_sqlite_replication_lag_seconds{db="app"}' "lag gauge served"
assert_contains "$T/served.prom" 'coffer_sqlite_replication_last_upload_timestamp_seconds{db="app"}' "last upload served"
wait_until 15 test -s "$T/m/coffer-sqlite.prom" || fail "no coffer-sqlite.prom beside COFFER_METRICS_FILE"
assert_contains "$T/m/coffer-sqlite.prom" 'coffer_sqlite_replication_lag_seconds{db="app"}' "lag gauge in the file"
if command -v promtool >/dev/null; then
	for f in "$T/served.prom" "$T/m/coffer-sqlite.prom"; do
		promtool check metrics <"$f" >"$T/promtool.out" 2>&1 ||
			{ cat "$T/promtool.out" >&2; soft_fail "promtool rejects $f"; }
	done
else
	note "promtool missing: the metrics' syntax is not checked"
fi
expect_exit 0 env -i "${AENV[@]}" "$COFFER" healthcheck
assert_contains "$T/out" "healthy" "healthcheck while following"
sleep 2
touch "$T/stop2"
wait "$WP" || fail "writer failed"
t_w2end=$(date +%s)
sleep 2.5  # the last interval (1 s) + the poll, stored
kill -TERM "$A"
wait "$A"
check_eq 0 $? "agent exit after SIGTERM"
# the job's snapshot and the two base copies (start, backup)
snaps_after=$("$COFFER" -r "$R" snapshots --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
check_eq $((snaps_before + 3)) "$snaps_after" "snapshots: the job's + two base copies"
"$COFFER" -r "$R" sqlite list --json "$DB" >"$T/list.json"
gen_backup_from=$("$PY" -c '
import json, sys, datetime
g = [x for x in json.load(open(sys.argv[1])) if x["reason"] == "backup"]
print(int(datetime.datetime.fromisoformat(g[-1]["from"].replace("Z", "+00:00")).timestamp()))' "$T/list.json") ||
	fail "no generation \"backup\" listed"
n=0
for ((t = t_w2; t <= t_w2end + 1; t += 2)); do
	restore_at "$R" "$t" "$T/at-$t.db" || { soft_fail "restore as of $t failed"; continue; }
	check "$T/at-$t.db" "$LOG" "$t.999999" 2.0
	n=$((n + 1))
done
assert_le 3 "$n" "restores checked across both generations"

# --- retention ---------------------------------------------------------------
ngen_before=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/list.json")
assert_le 3 "$ngen_before" "generations before retention"
expect_exit 0 env -i "${AENV[@]}" COFFER_KEEP_LAST=1 "$COFFER" agent --once
"$COFFER" -r "$R" sqlite list --json "$DB" >"$T/list2.json"
check_eq "backup" "$("$PY" -c 'import json,sys; print(" ".join(x["reason"] for x in json.load(open(sys.argv[1]))))' "$T/list2.json")" \
	"generations after retention: only the one covering the kept snapshot"
# two job snapshots forgotten by KEEP_LAST=1, and the two older bases with their generations
check_eq $((snaps_after + 1 - 2 - 2)) \
	"$("$COFFER" -r "$R" snapshots --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
	"snapshots after retention"
expect_exit 0 "$COFFER" -r "$R" check --read-data
t=$((gen_backup_from + 2))
if [ "$t" -le "$t_w2end" ]; then
	restore_at "$R" "$t" "$T/kept-$t.db" || soft_fail "restore to a kept time failed after retention"
	check "$T/kept-$t.db" "$LOG" "$t.999999" 2.0
fi
restore_latest "$R" "$T/kept-latest.db" || soft_fail "latest restore failed after retention"
check "$T/kept-latest.db" "$LOG" "$(date +%s.%N)" 0
expect_exit 1 "$COFFER" -r "$R" restore --sqlite "$DB" --time "$(date -d "@$t_w2" '+%Y-%m-%d %H:%M:%S')" \
	--target "$T/old.db"
assert_one_line_err "starts at or before"
[ ! -e "$T/old.db" ] || fail "a refused restore left a file"

# --- store outage ------------------------------------------------------------
if [ -z "${COFFER_TEST_S3:-}" ] || [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then
	note "COFFER_TEST_S3 is not set: the store outage part is skipped"
	e2e_done
fi
FP=${COFFER_SOURCE_DIR:-$(dirname "$0")/../..}/tests/infra/faultproxy.py
endpoint=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^(https?://[^/]+)/.*#\1#')
bucket=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^https?://[^/]+/([^/]+).*#\1#')
PP=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
proxy_up()
{
	"$PY" "$FP" --upstream "$endpoint" --listen "127.0.0.1:$PP" --quiet >/dev/null 2>>"$T/proxy.log" &
	PROXY=$!
	E2E_PIDS+=("$PROXY")
	wait_until 20 "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$PP" 2>/dev/null ||
		fail "faultproxy did not start: $(tail -3 "$T/proxy.log")"
}
proxy_down() { kill -KILL "$PROXY"; wait "$PROXY" 2>/dev/null; }
proxy_up
S=s3:http://127.0.0.1:$PP/$bucket/agent-sqlite-$$
init_repo "$S"
DB=$T/data/out.db
LOG=$T/writer-out.log
: >"$LOG"
"$PY" "$W" init "$DB"
# the webhook receiver: one JSON body a line
cat >"$T/recv.py" <<'PYEOF'
import http.server, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "ab") as f:
            f.write(body + b"\n")
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[2], "w").write(str(s.server_port))
s.serve_forever()
PYEOF
"$PY" "$T/recv.py" "$T/hooks.jsonl" "$T/hookport" &
E2E_PIDS+=($!)
wait_until 10 test -s "$T/hookport" || fail "webhook receiver did not start"
SENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$S" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_PATHS="$T/files" COFFER_STATE_DIR="$T/state-s3" COFFER_DOCKER_HOST=none
      COFFER_CACHE_DIR="$T/cache" COFFER_HOST=testhost COFFER_VERBOSE=1 COFFER_SCHEDULE=@yearly
      AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
      AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" COFFER_S3_STALL_TIMEOUT=2
      COFFER_SQLITE_REPLICATE="$DB" COFFER_SQLITE_SYNC_INTERVAL=0.5 COFFER_SQLITE_MAX_LAG=3
      COFFER_SQLITE_QUEUE_BYTES=16M COFFER_WEBHOOK_URL="http://127.0.0.1:$(cat "$T/hookport")/hook"
      COFFER_WEBHOOK_RETRIES=0)
rstate() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["databases"]["out"]["state"])' \
	"$T/state-s3/replication.json" 2>/dev/null; }
state_is() { [ "$(rstate)" = "$1" ]; }
"$PY" "$W" run "$DB" "$LOG" 1 1000000 0.01 "$T/stop3" &
WP=$!
E2E_PIDS+=("$WP")
env -i "${SENV[@]}" "$COFFER" agent >"$T/a3.out" 2>"$T/a3.err" &
A=$!
E2E_PIDS+=("$A")
wait_until 60 grep -q "segment .* stored" "$T/a3.err" || { cat "$T/a3.err"; fail "no segment stored through the proxy"; }
# a short outage: segments queue, nothing is lost
t_short=$(date +%s)
proxy_down
wait_until 30 state_is queued || { cat "$T/a3.err"; fail "replication did not report queueing"; }
proxy_up
wait_until 30 state_is following || { cat "$T/a3.err"; fail "replication did not recover from a short outage"; }
grep -q "works again" "$T/a3.err" || soft_fail "recovery not logged"
grep -q "started (outage)" "$T/a3.err" && soft_fail "a short outage started a new generation"
t_short_end=$(date +%s)
# a long outage: the queue overflows
proxy_down
wait_until 60 state_is outage || { cat "$T/a3.err"; fail "the queue did not overflow"; }
grep -q "exceed the bound" "$T/a3.err" || soft_fail "overflow not logged"
wal_at_overflow=$(stat -c %s "$DB-wal")
wait_until 30 bash -c '! env -i "$@" >/dev/null 2>&1' _ "${SENV[@]}" "$COFFER" healthcheck ||
	soft_fail "healthcheck stays healthy during the outage"
env -i "${SENV[@]}" "$COFFER" healthcheck >"$T/hc.out" 2>&1
assert_contains "$T/hc.out" "sqlite out" "the unhealthy healthcheck names the database"
sleep 5  # the writer goes on: without a held read transaction its WAL restarts
wal_later=$(stat -c %s "$DB-wal")
page=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("pragma page_size").fetchone()[0])' "$DB")
# autocheckpoint at 1000 pages, + one transaction's frames (at most 4 pages here)
bound=$(( (1004) * (page + 24) + 32 ))
[ "$bound" -lt "$wal_at_overflow" ] && bound=$wal_at_overflow
[ "$wal_later" -le "$bound" ] || soft_fail "the WAL grew to $wal_later bytes during the outage (bound $bound)"
note "WAL at overflow $wal_at_overflow, 5 s later $wal_later (bound $bound)"
wait_until 20 grep -q coffer.sqlite.failed "$T/hooks.jsonl" || soft_fail "no coffer.sqlite.failed webhook"
proxy_up
wait_until 60 state_is following || { cat "$T/a3.err"; fail "replication did not recover after the outage"; }
grep -q "started (outage)" "$T/a3.err" || soft_fail "no new generation after the overflow"
wait_until 20 grep -q coffer.sqlite.recovered "$T/hooks.jsonl" || soft_fail "no coffer.sqlite.recovered webhook"
expect_exit 0 env -i "${SENV[@]}" "$COFFER" healthcheck
sleep 1
touch "$T/stop3"
wait "$WP" || fail "writer failed"
kill -TERM "$A"
wait "$A"
check_eq 0 $? "agent exit after SIGTERM"
restore_latest "$S" "$T/out-latest.db" || fail "latest restore after the outage failed"
check "$T/out-latest.db" "$LOG" "$(date +%s.%N)" 0
# the short outage lost nothing: its seconds restore exact
for ((t = t_short; t <= t_short_end; t++)); do
	restore_at "$S" "$t" "$T/out-$t.db" || { soft_fail "restore as of $t failed"; continue; }
	check "$T/out-$t.db" "$LOG" "$t.999999" 1.5
done
e2e_done
