#!/bin/bash
# agent.sh - `coffer agent` end to end against a local repository: a bad
# setting is refused naming the key; --print-schedule (under faketime) in a
# DST zone; --once backs up every volume under COFFER_BACKUP_ROOT plus a
# COFFER_STDIN_COMMANDS stream into one snapshot that restores bit-exact;
# hooks run in order and a failing pre hook (or dump command) fails the job
# without a snapshot; the metrics file parses and holds the job's figures;
# the state file drives the healthcheck; a loopback receiver gets the webhook
# with a valid Standard Webhooks signature (after one 503 it is retried);
# SIGTERM mid-job exits 130 promptly with no snapshot and a clean repository;
# the loop fires at the scheduled minute (faketime) and exits at once on
# SIGTERM between jobs; SIGHUP reloads the config file.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/app" "$T/backup/db/sub" "$T/state"
randfile "$T/backup/app/blob" 200000
echo config > "$T/backup/app/settings.ini"
echo rows > "$T/backup/db/sub/table"
echo "not a volume" > "$T/backup/stray-file"

# the agent's environment: nothing but what a container would be given.
# Background runs use `env -i "${AENV[@]}" ... &` directly, so that $! is the
# agent itself and signals reach it.
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none)
agent_env() { env -i "${AENV[@]}" "$@"; }
snapshots() { "$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# --- a bad value is refused, naming the key -----------------------------
expect_exit 1 agent_env COFFER_KEEP_DAILY=seven "$COFFER" agent --once
assert_one_line_err "bad COFFER_KEEP_DAILY"
assert_contains "$T/err" 'COFFER_KEEP_DAILY: "seven" is not a whole number' "refusal"
expect_exit 1 agent_env COFFER_SCHEDULE='5 4 * *' "$COFFER" agent
assert_contains "$T/err" "COFFER_SCHEDULE" "refusal"
expect_exit 1 agent_env COFFER_WEBHOOK_URL=http://127.0.0.1:9/ COFFER_WEBHOOK_SECRET=whsec_topsecret%% "$COFFER" agent
assert_not_contains "$T/err" "topsecret" "a refused secret is not echoed"
assert_eq 0 "$(snapshots)" "snapshots after refusals"

# --- --print-schedule ---------------------------------------------------
if command -v faketime > /dev/null; then
	# (ASAN_OPTIONS: a sanitizer build tolerates libfaketime preloaded before it)
	expect_exit 0 env -i TZ=Europe/Berlin ASAN_OPTIONS=verify_asan_link_order=0 \
		faketime '2026-03-27 12:00:00' "$COFFER" agent --print-schedule 3
	check_eq "2026-03-28 05:04:00 CET (+0100)
2026-03-29 05:04:00 CEST (+0200)
2026-03-30 05:04:00 CEST (+0200)" "$(cat "$T/out")" "the default schedule across the DST change"
else
	note "faketime not installed: --print-schedule checked without a fixed clock"
fi
expect_exit 0 env -i COFFER_SCHEDULE='@hourly' "$COFFER" agent --print-schedule 2
[ "$(wc -l < "$T/out")" = 2 ] || soft_fail "--print-schedule 2 printed $(wc -l < "$T/out") lines"
grep -q ':00:00 UTC$' "$T/out" || soft_fail "@hourly in UTC: $(cat "$T/out")"

# --- --once: volumes + a command's output in one snapshot, hooks in order --
HOOKLOG=$T/hooks.log
expect_exit 0 agent_env COFFER_METRICS_FILE="$T/coffer.prom" \
	COFFER_PRE_COMMAND="echo pre >> $HOOKLOG" \
	COFFER_POST_COMMAND="echo post \$COFFER_JOB_STATUS >> $HOOKLOG" \
	COFFER_STDIN_COMMANDS="dumps/app.sql=echo dumping >> $HOOKLOG; printf 'CREATE TABLE t;\\n'" \
	COFFER_TAGS=nightly,agent "$COFFER" agent --once
check_eq "pre
dumping
post success" "$(cat "$HOOKLOG")" "hooks and the dump ran in order"
assert_contains "$T/err" "result=success exit=0 snapshot=" "the job's log line"
assert_eq 1 "$(snapshots)" "snapshots after --once"
cof -r "$R" --json snapshots
check_eq "$T/backup/app $T/backup/db dumps/app.sql" \
	"$(json_field "$T/out" '" ".join(sorted(j[0]["paths"]))')" "snapshot paths: each directory, not the stray file, plus the dump"
check_eq "agent nightly" "$(json_field "$T/out" '" ".join(sorted(j[0]["tags"]))')" "tags"
cof -r "$R" restore latest --target "$T/r1"
compare_trees "$T/backup/app" "$T/r1$T/backup/app"
compare_trees "$T/backup/db" "$T/r1$T/backup/db"
check_eq "CREATE TABLE t;" "$(cat "$T/r1/dumps/app.sql")" "the command's output as a file"

# the metrics file is valid exposition text with the job's figures
"$PY" - "$T/coffer.prom" <<'PYEOF' || soft_fail "metrics file"
import re, sys
text = open(sys.argv[1]).read()
vals, types = {}, {}
for line in text.splitlines():
    if line.startswith("# TYPE "):
        _, _, name, typ = line.split(" ")
        assert typ in ("gauge", "counter"), line
        types[name] = typ
    elif line.startswith("# HELP "):
        continue
    else:
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[a-z_]+=\"[^\"]*\"(?:,[a-z_]+=\"[^\"]*\")*\})? (-?[0-9.e+]+)", line)
        assert m, "not a sample line: %r" % line
        assert m.group(1) in types, "sample without TYPE: %s" % line
        vals[m.group(1)] = float(m.group(2))
assert vals.get("coffer_build_info") == 1, "no coffer_build_info"
want = {"coffer_last_run_status": 0, "coffer_last_run_success": 1, "coffer_snapshots": 1,
        "coffer_runs_total": 1, "coffer_errors_total": 0}
for k, v in want.items():
    assert vals.get(k) == v, "%s = %r, want %r" % (k, vals.get(k), v)
assert vals["coffer_backup_files"] >= 4, vals
assert vals["coffer_backup_added_bytes"] > 200000, vals
assert vals["coffer_last_success_timestamp_seconds"] == vals["coffer_last_run_timestamp_seconds"]
assert vals["coffer_last_run_duration_seconds"] >= 0
print("metrics ok: %d samples" % len(vals))
PYEOF
expect_exit 0 agent_env "$COFFER" agent --healthcheck
assert_contains "$T/out" "healthy" "healthcheck after a good job"

# --- a SQLite database through COFFER_SQLITE ---------------------------------
if command -v sqlite3 > /dev/null; then
	mkdir -p "$T/sq"
	sqlite3 "$T/sq/app.db" 'PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);' > /dev/null
	expect_exit 0 agent_env COFFER_BACKUP_PATHS="$T/backup/app" COFFER_SQLITE="$T/sq/app.db" "$COFFER" agent --once
	rm -rf "$T/r2"
	cof -r "$R" restore latest --target "$T/r2"
	check_eq "ok 6" "$(sqlite3 "$T/r2$T/sq/app.db" 'PRAGMA integrity_check; SELECT sum(x) FROM t;' | tr '\n' ' ' | sed 's/ $//')" \
		"the SQLite copy restored"
	[ -e "$T/r2$T/sq/app.db-wal" ] && soft_fail "the -wal file was stored"
	# forget it again so the counts below stay simple
	cof -r "$R" --json snapshots
	"$COFFER" -r "$R" forget "$(json_field "$T/out" 'sorted(j, key=lambda s: s["time"])[-1]["id"]')" > /dev/null 2>&1 ||
		{ rm -f "$R/snapshots/$(json_field "$T/out" 'sorted(j, key=lambda s: s["time"])[-1]["id"]')"; }
	assert_eq 1 "$(snapshots)" "snapshots after forgetting the SQLite one"
else
	note "sqlite3 not installed: COFFER_SQLITE not tested"
fi

# --- a failing pre hook fails the job before anything is read -----------
: > "$HOOKLOG"
expect_exit 1 agent_env COFFER_PRE_COMMAND="echo pre >> $HOOKLOG; exit 7" \
	COFFER_POST_COMMAND="echo post >> $HOOKLOG" "$COFFER" agent --once
check_eq "pre" "$(cat "$HOOKLOG")" "the post hook does not run when the pre hook failed"
assert_contains "$T/err" "stage=pre-command" "log line names the stage"
assert_contains "$T/err" "exited with status 7" "log line says why"
assert_eq 1 "$(snapshots)" "snapshots after a failed pre hook"
expect_exit 1 agent_env "$COFFER" healthcheck
assert_contains "$T/out" "unhealthy: the last job failed" "healthcheck after a failed job"

# --- a failing dump command: no snapshot, post hook told -----------------
: > "$HOOKLOG"
expect_exit 1 agent_env COFFER_STDIN_COMMANDS="db.sql=echo partial; exit 3" \
	COFFER_POST_COMMAND="echo post \$COFFER_JOB_STATUS >> $HOOKLOG" "$COFFER" agent --once
assert_contains "$T/err" "command 'echo partial; exit 3' exited with status 3" "dump failure named"
check_eq "post failed" "$(cat "$HOOKLOG")" "post hook sees the failure"
assert_eq 1 "$(snapshots)" "snapshots after a failed dump"

# --- the webhook, verified by a loopback receiver -------------------------
SECRET=whsec_$(head -c 32 /dev/urandom | base64 -w0)
cat > "$T/receiver.py" <<'PYEOF'
import base64, hashlib, hmac, http.server, json, sys
secret, out = sys.argv[1], sys.argv[2]
key = base64.b64decode(secret[len("whsec_"):])
fails = [int(sys.argv[3])]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if fails[0] > 0:
            fails[0] -= 1
            self.send_response(503); self.end_headers(); return
        mid, ts = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        want = "v1," + base64.b64encode(hmac.new(key, b"%s.%s.%s" % (mid.encode(), ts.encode(), body),
                                                 hashlib.sha256).digest()).decode()
        sigs = self.headers["webhook-signature"].split(" ")
        rec = {"valid": any(hmac.compare_digest(s, want) for s in sigs), "id": mid, "ts": int(ts),
               "ctype": self.headers["Content-Type"], "body": json.loads(body)}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
if len(sys.argv) > 5:  # https, with this certificate and key
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
PYEOF
"$PY" "$T/receiver.py" "$SECRET" "$T/hooks.jsonl" 1 > "$T/port" &
E2E_PIDS+=($!)
wait_for test -s "$T/port" || fail "the receiver did not start"
PORT=$(cat "$T/port")
expect_exit 0 agent_env COFFER_WEBHOOK_URL="http://127.0.0.1:$PORT/coffer" COFFER_WEBHOOK_SECRET="$SECRET" \
	"$COFFER" agent --once
assert_not_contains "$T/err" "${SECRET#whsec_}" "the secret in the log"
[ -s "$T/hooks.jsonl" ] || fail "no webhook received (after one 503)"
check_eq 1 "$(wc -l < "$T/hooks.jsonl")" "webhooks received"
tail -n 1 "$T/hooks.jsonl" > "$T/hook.json"
check_eq True "$(json_field "$T/hook.json" 'j["valid"]')" "webhook signature valid"
check_eq "coffer.job.succeeded success" "$(json_field "$T/hook.json" 'j["body"]["type"] + " " + j["body"]["data"]["status"]')" "webhook body"
check_eq "$(latest_id "$R")" "$(json_field "$T/hook.json" 'j["body"]["data"]["snapshot_id"]')" "webhook names the snapshot"
check_eq application/json "$(json_field "$T/hook.json" 'j["ctype"]')" "content type"
json_field "$T/hook.json" 'j["id"]' | grep -q '^msg_' || soft_fail "webhook-id is not msg_..."
assert_eq 2 "$(snapshots)" "snapshots after the webhook job"


# --- SIGTERM during a job: prompt exit 130, no snapshot, clean repository --
: > "$HOOKLOG"
env -i "${AENV[@]}" COFFER_STDIN_COMMANDS="slow.bin=for i in \$(seq 600); do head -c 100000 /dev/urandom; sleep 0.05; done; echo done >> $HOOKLOG" \
	COFFER_POST_COMMAND="echo post \$COFFER_JOB_STATUS >> $HOOKLOG" \
	"$COFFER" agent --once > "$T/bg.out" 2> "$T/bg.err" &
PID=$!
E2E_PIDS+=($PID)
sleep 2
kill -0 $PID 2> /dev/null || { cat "$T/bg.err" >&2; fail "the slow job ended before SIGTERM"; }
t0=$(date +%s%N)
kill -TERM $PID
wait $PID
RC=$?
MS=$((($(date +%s%N) - t0) / 1000000))
cat "$T/bg.err" >&2
check_eq 130 "$RC" "exit code after SIGTERM mid-job"
assert_le "$MS" 5000 "milliseconds from SIGTERM to exit"
check_eq "post interrupted" "$(cat "$HOOKLOG")" "post hook after SIGTERM (the dump did not finish)"
assert_eq 2 "$(snapshots)" "snapshots after SIGTERM"
cof -r "$R" check
[ -z "$(find "$R/locks" -type f 2> /dev/null)" ] || soft_fail "SIGTERM left a lock"

# --- the loop fires at the scheduled minute; SIGTERM between jobs exits 0 --
if command -v faketime > /dev/null; then
	# the fake clock starts 3 s before 05:04 and runs at real speed
	# (libfaketime preloaded directly: the faketime wrapper forks, and the
	# signals below must reach the agent)
	LIBFT=$(dpkg -L libfaketime 2> /dev/null | grep '/libfaketime.so.1$' | head -n 1)
	[ -n "$LIBFT" ] || fail "libfaketime.so.1 not found"
	env -i "${AENV[@]}" COFFER_METRICS_FILE="$T/loop.prom" LD_PRELOAD="$LIBFT" \
		ASAN_OPTIONS=verify_asan_link_order=0 \
		FAKETIME='@2026-01-01 05:03:57' FAKETIME_DONT_RESET=1 \
		"$COFFER" agent > "$T/loop.out" 2> "$T/loop.err" &
	PID=$!
	E2E_PIDS+=($PID)
	loop_ran() { grep -q '"tick_unix": 1767243840' "$T/state/state.json" 2> /dev/null; }
	wait_for loop_ran || { cat "$T/loop.err" >&2; fail "the 05:04 tick did not run within 20 s"; }
	wait_for grep -qE "^coffer_next_run_timestamp_seconds(\{[^}]*\})? 1767330240$" "$T/loop.prom" ||
		soft_fail "next run after the job is not the next day's 05:04: $(grep next_run "$T/loop.prom")"
	t0=$(date +%s%N)
	kill -TERM $PID
	wait $PID
	RC=$?
	MS=$((($(date +%s%N) - t0) / 1000000))
	check_eq 0 "$RC" "exit code after SIGTERM between jobs"
	assert_le "$MS" 2000 "milliseconds from SIGTERM (idle) to exit"
	assert_contains "$T/loop.err" "result=success" "the loop's job"
	assert_eq 3 "$(snapshots)" "snapshots after the loop's job"
else
	note "faketime not installed: the loop's timing is not tested"
fi

# --- SIGHUP reloads the config file -------------------------------------
# (and the metrics are served over HTTP while the agent waits)
MPORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'COFFER_SCHEDULE=4 5 * * *\nCOFFER_METRICS_LISTEN=127.0.0.1:%s\n' "$MPORT" > "$T/agent.env"
env -i "${AENV[@]}" COFFER_CONFIG_FILE="$T/agent.env" "$COFFER" agent > "$T/hup.out" 2> "$T/hup.err" &
PID=$!
E2E_PIDS+=($PID)
wait_for grep -q "started" "$T/hup.err" || fail "the agent did not start"
# served, and holding the first computed figures (the server may answer
# before the agent has published them)
metrics_served() { curl -sf "http://127.0.0.1:$MPORT/metrics" > "$T/served.prom" 2> /dev/null &&
	grep -q coffer_next_run_timestamp_seconds "$T/served.prom"; }
if command -v curl > /dev/null; then
	wait_for metrics_served || soft_fail "no metrics served on 127.0.0.1:$MPORT"
	assert_contains "$T/served.prom" "coffer_next_run_timestamp_seconds" "served metrics"
	# the last success survives the restart (read back from the state file)
	assert_contains "$T/served.prom" "coffer_last_success_timestamp_seconds" "served metrics after a restart"
	curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/other" > "$T/code"
	check_eq 404 "$(cat "$T/code")" "another path"
fi
printf 'COFFER_SCHEDULE=@hourly\nCOFFER_METRICS_LISTEN=127.0.0.1:%s\n' "$MPORT" > "$T/agent.env"
kill -HUP $PID
wait_for grep -q 'configuration reloaded (schedule "@hourly"' "$T/hup.err" || soft_fail "SIGHUP: $(cat "$T/hup.err")"
printf 'COFFER_SCHEDULE=@sometimes\n' > "$T/agent.env"
kill -HUP $PID
wait_for grep -q 'new configuration is refused' "$T/hup.err" || soft_fail "a bad reload: $(cat "$T/hup.err")"
kill -0 $PID 2> /dev/null || soft_fail "a bad reload stopped the agent"
kill -TERM $PID
wait $PID
check_eq 0 "$?" "exit after SIGHUP and SIGTERM"

# --- retention: COFFER_KEEP_* forgets this host's snapshots, prune frees ----
R2=$T/repo2
init_repo "$R2"
mkdir -p "$T/ret/vol"
# another host's snapshot of the same paths: never touched by this agent
cof -r "$R2" backup --host laptop "$T/ret/vol"
RENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_REPOSITORY="$R2" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_PATHS="$T/ret/vol" COFFER_STATE_DIR="$T/state2" COFFER_DOCKER_HOST=none
      COFFER_HOST=agent-host COFFER_KEEP_LAST=2)
for i in 1 2 3; do
	randfile "$T/ret/vol/f$i" 3000000   # unique data per snapshot, for prune to free
	rm -f "$T/ret/vol/f$((i - 1))"
	expect_exit 0 env -i "${RENV[@]}" "$COFFER" agent --once
done
assert_contains "$T/err" "forgotten=1" "the third job forgot one snapshot"
"$COFFER" -r "$R2" --json snapshots > "$T/s2.json" || fail "snapshots"
check_eq "agent-host agent-host laptop" "$(json_field "$T/s2.json" '" ".join(sorted(s["hostname"] for s in j))')" \
	"snapshots left: the 2 newest of this host, and the other host's"
# prune when a tick of COFFER_PRUNE_SCHEDULE has passed since the last prune
du_before=$(du -sk "$R2/data" | cut -f1)
"$PY" - "$T/state2/state.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); j["agent"]["last_prune_unix"] = 1000000000
json.dump(j, open(sys.argv[1], "w"))
PYEOF
randfile "$T/ret/vol/f4" 1000
rm -f "$T/ret/vol/f3"
expect_exit 0 env -i "${RENV[@]}" COFFER_PRUNE_SCHEDULE="0 3 * * *" "$COFFER" agent --once
du_after=$(du -sk "$R2/data" | cut -f1)
note "prune: data/ $du_before KiB -> $du_after KiB"
[ "$du_after" -lt "$du_before" ] || soft_fail "prune freed nothing ($du_before KiB -> $du_after KiB)"
check_eq True "$(json_field "$T/state2/state.json" 'j["last_job"]["bytes_pruned"] > 0')" "bytes_pruned reported"
cof -r "$R2" check --read-data
rm -rf "$T/r3"
cof -r "$R2" restore latest --host agent-host --target "$T/r3"
compare_trees "$T/ret/vol" "$T/r3$T/ret/vol"

# --- a scheduled check reads packs back and fails the job on damage --------
"$PY" - "$T/state2/state.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); j["agent"]["last_check_unix"] = 1000000000
json.dump(j, open(sys.argv[1], "w"))
PYEOF
expect_exit 0 env -i "${RENV[@]}" COFFER_CHECK_SCHEDULE="0 4 * * *" COFFER_CHECK_READ_DATA_SUBSET=1/1 \
	"$COFFER" -v agent --once
check_eq True "$(json_field "$T/state2/state.json" 'j["agent"]["last_check_unix"] > 1000000000')" \
	"the check ran and was recorded"
# damage the largest pack; the next due check names it and fails the job
big=$(find "$R2/data" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(100); b = f.read(1); f.seek(100); f.write(bytes([b[0] ^ 1]))' "$big"
"$PY" - "$T/state2/state.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); j["agent"]["last_check_unix"] = 1000000000
json.dump(j, open(sys.argv[1], "w"))
PYEOF
expect_exit 1 env -i "${RENV[@]}" COFFER_CHECK_SCHEDULE="0 4 * * *" COFFER_CHECK_READ_DATA_SUBSET=1/1 \
	"$COFFER" agent --once
assert_contains "$T/err" "$(basename "$big")" "the damaged pack is named"
check_eq check "$(json_field "$T/state2/state.json" 'j["last_job"]["stage"]')" "the job failed at the check"

# --- the examples parse ----------------------------------------------------
EX=$COFFER_SOURCE_DIR/examples
if [ -d "$EX" ] && "$PY" -c 'import yaml' 2> /dev/null; then
	for y in "$EX"/*.yml "$EX"/*/*.yaml; do
		[ -e "$y" ] || continue
		"$PY" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$y" ||
			soft_fail "example $y does not parse as YAML"
	done
	# the compose file's schedule and the CronJob's schedule are valid for the agent
	for f in docker-compose.yml kubernetes/cronjob.yaml; do
		sched=$("$PY" -c '
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
d = docs[0]
print(d["services"]["backup"]["environment"]["COFFER_SCHEDULE"] if "services" in d else d["spec"]["schedule"])' "$EX/$f")
		env -i COFFER_SCHEDULE="$sched" "$COFFER" agent --print-schedule 1 > /dev/null ||
			soft_fail "example $f: schedule '$sched' refused"
	done
fi
# the Grafana dashboard is JSON and asks only for metrics the agent exports
if [ -f "$EX/grafana/coffer-dashboard.json" ]; then
	cat "$T"/*.prom "$T"/*/*.prom > "$T/all.prom" 2> /dev/null
	"$PY" - "$EX/grafana/coffer-dashboard.json" "$T/all.prom" << 'PYEOF' || soft_fail "the Grafana dashboard refers to metrics the agent does not export"
import json, re, sys
d = json.load(open(sys.argv[1]))
exported = set(re.findall(r"^(coffer_[a-z_]+)", open(sys.argv[2]).read(), re.M))
used = set(re.findall(r"coffer_[a-z_]+", json.dumps(d)))
missing = used - exported
if missing:
    print("not exported:", sorted(missing)); sys.exit(1)
PYEOF
fi
for s in "$COFFER_SOURCE_DIR"/examples/*.sh; do
	bash -n "$s" || soft_fail "example $s has a syntax error"
done
# --- an https receiver whose certificate a private CA signed: refused at
# once (no retries) with a hint, delivered with COFFER_CACERT --------------
if command -v openssl > /dev/null; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
		-addext "subjectAltName=IP:127.0.0.1" -keyout "$T/hook.key" -out "$T/hook.crt" 2> /dev/null ||
		fail "openssl could not make a certificate"
	: > "$T/hooks-tls.jsonl"
	"$PY" "$T/receiver.py" "$SECRET" "$T/hooks-tls.jsonl" 0 "$T/hook.crt" "$T/hook.key" > "$T/port-tls" &
	E2E_PIDS+=($!)
	wait_for test -s "$T/port-tls" || fail "the https receiver did not start"
	URL="https://127.0.0.1:$(cat "$T/port-tls")/coffer"
	# (verbose: retries and deliveries are logged)
	expect_exit 0 agent_env COFFER_VERBOSE=1 COFFER_WEBHOOK_URL="$URL" COFFER_WEBHOOK_SECRET="$SECRET" \
		"$COFFER" agent --once
	assert_contains "$T/err" "COFFER_CACERT" "the refused certificate's hint"
	assert_not_contains "$T/err" "retrying" "a certificate that does not verify is not retried"
	[ ! -s "$T/hooks-tls.jsonl" ] || fail "a webhook went to a receiver whose certificate did not verify"
	expect_exit 0 agent_env COFFER_VERBOSE=1 COFFER_WEBHOOK_URL="$URL" COFFER_WEBHOOK_SECRET="$SECRET" \
		COFFER_CACERT="$T/hook.crt" "$COFFER" agent --once
	assert_contains "$T/err" "webhook delivered" "webhook over https with COFFER_CACERT"
	check_eq True "$(json_field "$T/hooks-tls.jsonl" 'j["valid"]')" "webhook over https: signature valid"
else
	note "openssl is not installed: the https webhook is not tested"
fi
e2e_done
