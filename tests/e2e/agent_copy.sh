#!/bin/bash
# agent_copy.sh - the agent's offsite copies (COFFER_COPY_TO_<NAME>_*) against
# Swift's s3api: a local main repository, a daily target "offsite" on one
# bucket (after each backup, its own S3 credentials: there are no AWS_*
# variables in the agent's environment), a monthly target on another bucket
# copying FROM offsite with its own schedule and KEEP_MONTHLY=2, and a target
# "broken" with a wrong S3 secret.  Proves: --once backs up and then copies;
# the copies restore bit-exact and carry the originals' times; the broken
# target is named in the log, the webhook and the metrics (and fails the
# healthcheck and the exit code, 4) while the others succeed; the monthly
# target holds exactly what KEEP_MONTHLY=2 keeps and is never sent what it
# would forget; a second copy adds no pack to either target; the monthly
# copy does not run again before its next tick, --run copy:monthly runs it
# now; a scheduled copy past its due time makes the healthcheck fail
# (faketime); unknown COFFER_COPY_TO_* keys and a bad _FROM are refused.
# Skipped (77) without COFFER_TEST_S3.
. "$(dirname "$0")/lib.sh"
e2e_setup
[ -n "${COFFER_TEST_S3:-}" ] || skip "COFFER_TEST_S3 is not set (see tests/run.sh)"
: "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"

EP=${COFFER_TEST_S3#s3:}
EP=${EP%/*}
OFF=s3:$EP/coff-$RANDOM$RANDOM
MON=s3:$EP/cmon-$RANDOM$RANDOM
BRK=s3:$EP/cbrk-$RANDOM$RANDOM
printf 'offsite password\n' > "$T/pw_off"
printf 'monthly password\n' > "$T/pw_mon"
printf '%s\n' "$AWS_ACCESS_KEY_ID" > "$T/mon_key"
printf '%s\n' "$AWS_SECRET_ACCESS_KEY" > "$T/mon_secret"
R=$T/repo
init_repo "$R"
COFFER_PASSWORD_FILE=$T/pw_off init_repo "$OFF"
COFFER_PASSWORD_FILE=$T/pw_mon init_repo "$MON"
init_repo "$BRK"

mkdir -p "$T/backup/app" "$T/state"
randfile "$T/backup/app/blob" 400000
echo v1 > "$T/backup/app/settings.ini"

# older snapshots of this host, as if the agent had run for months: times
# 95, 70, 66, 40, 35 and 33 days ago
for d in 95 70 66 40 35 33; do
	cof -r "$R" backup -q --host web1 --time "$(date -u -d "-$d days" '+%Y-%m-%d %H:%M:%S')" "$T/backup/app"
done

# a webhook receiver: one JSON line per event
cat > "$T/receiver.py" <<'PYEOF'
import http.server, json, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "a") as f:
            f.write(json.dumps(json.loads(body)) + "\n")
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PYEOF
"$PY" "$T/receiver.py" "$T/hooks.jsonl" > "$T/port" &
E2E_PIDS+=($!)
wait_for test -s "$T/port" || fail "the receiver did not start"

AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_HOST=web1
      COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_PATHS="$T/backup/app" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none
      COFFER_METRICS_FILE="$T/coffer.prom" COFFER_WEBHOOK_URL="http://127.0.0.1:$(cat "$T/port")/hook"
      COFFER_COPY_TO_OFFSITE_REPOSITORY="$OFF" COFFER_COPY_TO_OFFSITE_PASSWORD_FILE="$T/pw_off"
      COFFER_COPY_TO_OFFSITE_AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
      COFFER_COPY_TO_OFFSITE_AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
      COFFER_COPY_TO_MONTHLY_REPOSITORY="$MON" COFFER_COPY_TO_MONTHLY_PASSWORD_FILE="$T/pw_mon"
      COFFER_COPY_TO_MONTHLY_AWS_ACCESS_KEY_ID_FILE="$T/mon_key"
      COFFER_COPY_TO_MONTHLY_AWS_SECRET_ACCESS_KEY_FILE="$T/mon_secret"
      COFFER_COPY_TO_MONTHLY_FROM=offsite COFFER_COPY_TO_MONTHLY_SCHEDULE="0 3 1 * *"
      COFFER_COPY_TO_MONTHLY_KEEP_MONTHLY=2)
BROKEN=(COFFER_COPY_TO_BROKEN_REPOSITORY="$BRK" COFFER_COPY_TO_BROKEN_PASSWORD_FILE="$PWFILE"
        COFFER_COPY_TO_BROKEN_AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
        COFFER_COPY_TO_BROKEN_AWS_SECRET_ACCESS_KEY="not-the-secret")
agent_env() { env -i "${AENV[@]}" "$@"; }
off() { COFFER_PASSWORD_FILE=$T/pw_off "$COFFER" -r "$OFF" "$@"; }
mon() { COFFER_PASSWORD_FILE=$T/pw_mon "$COFFER" -r "$MON" "$@"; }
times() { "$PY" -c 'import json,sys; print(" ".join(sorted(s["time"] for s in json.load(sys.stdin))))'; }
packs() { "$@" --json stats | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pack_count"])'; }
metric() { "$PY" - "$T/coffer.prom" "$1" <<'PYEOF'
import re, sys
for line in open(sys.argv[1]):
    m = re.fullmatch(r'([a-z_]+(?:\{[^}]*\})?) (\S+)\n?', line)
    # a name without labels matches the family whatever its labels (host, repository)
    if m and (m.group(1) == sys.argv[2] or ("{" not in sys.argv[2] and m.group(1).split("{")[0] == sys.argv[2])):
        print(m.group(2)); break
else:
    print("absent")
PYEOF
}

# --- bad settings are refused, naming the key ---------------------------------
expect_exit 1 agent_env COFFER_COPY_TO_OFFSITE_KEEP_MONHTLY=3 "$COFFER" agent --once
assert_one_line_err "a misspelt copy key"
assert_contains "$T/err" "COFFER_COPY_TO_OFFSITE_KEEP_MONHTLY" "the misspelt key is named"
expect_exit 1 agent_env COFFER_COPY_TO_MONTHLY_FROM=nowhere "$COFFER" agent --once
assert_contains "$T/err" 'COFFER_COPY_TO_MONTHLY_FROM: there is no copy target "nowhere"' "a _FROM naming nothing"
expect_exit 1 agent_env COFFER_COPY_TO_OFFSITE_FROM=monthly "$COFFER" agent --once
assert_contains "$T/err" "go round in a circle" "a _FROM loop"
expect_exit 1 agent_env COFFER_COPY_TO_X_PASSWORD_FILE="$PWFILE" "$COFFER" agent --once
assert_contains "$T/err" "COFFER_COPY_TO_X_REPOSITORY is not set" "a target without a repository"
check_eq 6 "$("$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
	"snapshots after the refusals"

# --- first run: backup, then offsite (after it), monthly (never run: due),
# broken (wrong secret) ---------------------------------------------------------
expect_exit 4 agent_env "${BROKEN[@]}" "$COFFER" agent --once
cp "$T/err" "$T/run1.err"
assert_contains "$T/run1.err" "coffer agent: job start=" "the backup's log line"
grep -q "result=success exit=0 snapshot=" "$T/run1.err" || soft_fail "the backup did not succeed: $(cat "$T/run1.err")"
grep -q 'copy target=offsite from=main .*result=success exit=0 copied=7 present=0' "$T/run1.err" ||
	soft_fail "offsite: $(grep 'target=offsite' "$T/run1.err")"
grep -q 'copy target=broken from=main .*result=failed exit=1 .*stage=target error=' "$T/run1.err" ||
	soft_fail "broken is not named as failed: $(grep 'target=broken' "$T/run1.err")"
grep -q 'copy target=monthly from=offsite .*result=success exit=0 copied=2 present=0 not_kept=5' "$T/run1.err" ||
	soft_fail "monthly: $(grep 'target=monthly' "$T/run1.err")"
# the order: offsite before the monthly copy taken from it
check_eq "broken monthly offsite" "$(grep -o 'copy target=[a-z]*' "$T/run1.err" | cut -d= -f2 | sort | tr '\n' ' ' | sed 's/ $//')" \
	"each target reported once"
[ "$(grep -n 'target=offsite' "$T/run1.err" | cut -d: -f1)" -lt "$(grep -n 'target=monthly' "$T/run1.err" | cut -d: -f1)" ] ||
	soft_fail "monthly ran before offsite"

# offsite holds every snapshot of the main repository, restorable
"$COFFER" -r "$R" --json snapshots > "$T/main.json"
off --json snapshots > "$T/off.json" || fail "offsite snapshots"
check_eq "$(times < "$T/main.json")" "$(times < "$T/off.json")" "offsite snapshots' times"
rm -rf "$T/r1"
expect_exit 0 off restore latest --target "$T/r1"
compare_trees "$T/backup/app" "$T/r1$T/backup/app"

# monthly holds what KEEP_MONTHLY=2 keeps: the newest of each of the two latest months
want=$("$PY" -c '
import json, sys
snaps = sorted(json.load(open(sys.argv[1])), key=lambda s: s["time"], reverse=True)
months, keep = [], []
for s in snaps:
    m = s["time"][:7]
    if m not in months:
        months.append(m); keep.append(s["time"])
print(" ".join(sorted(keep[:2])))' "$T/main.json")
mon --json snapshots > "$T/mon.json" || fail "monthly snapshots"
check_eq "$want" "$(times < "$T/mon.json")" "monthly keeps only its retention"
rm -rf "$T/r2"
expect_exit 0 mon restore latest --target "$T/r2"
compare_trees "$T/backup/app" "$T/r2$T/backup/app"

# the webhook: one event per target, the broken one named as failed
check_eq "coffer.copy.failed:broken coffer.copy.succeeded:monthly coffer.copy.succeeded:offsite coffer.job.succeeded:" \
	"$("$PY" -c '
import json, sys
print(" ".join(sorted("%s:%s" % (e["type"], e["data"].get("target", "")) for e in map(json.loads, open(sys.argv[1])))))' "$T/hooks.jsonl")" \
	"webhook events"
"$PY" -c '
import json, sys
e = [e for e in map(json.loads, open(sys.argv[1])) if e["data"].get("target") == "broken"][0]["data"]
assert e["status"] == "failed" and e["exit_code"] == 1 and e["stage"] == "target" and e["error"], e
assert "not-the-secret" not in json.dumps(e), "the secret is in the webhook"' "$T/hooks.jsonl" ||
	soft_fail "the broken target's webhook"
assert_not_contains "$T/run1.err" "not-the-secret" "the wrong secret in the log"

# the metrics, per target
check_eq 0 "$(metric 'coffer_copy_last_status{target="offsite"}')" "offsite status metric"
check_eq 1 "$(metric 'coffer_copy_last_status{target="broken"}')" "broken status metric"
check_eq 0 "$(metric 'coffer_copy_last_success{target="broken"}')" "broken success metric"
check_eq absent "$(metric 'coffer_copy_last_success_timestamp_seconds{target="broken"}')" "broken never succeeded"
ts=$(metric 'coffer_copy_last_success_timestamp_seconds{target="offsite"}')
[ "$ts" != absent ] && [ "${ts%.*}" -ge $(($(date +%s) - 600)) ] || soft_fail "offsite last success metric: $ts"
check_eq 2 "$(metric 'coffer_copy_snapshots{target="monthly"}')" "monthly snapshots metric"
check_eq 0 "$(metric 'coffer_last_run_status')" "the backup's own status metric"

expect_exit 1 agent_env "${BROKEN[@]}" "$COFFER" healthcheck
assert_contains "$T/out" "the last copy to broken failed" "healthcheck names the failed target"

# --- a second copy adds no pack --------------------------------------------------
p_off=$(packs off); p_mon=$(packs mon)
expect_exit 0 agent_env "$COFFER" agent --run copy:offsite
assert_contains "$T/err" "copy target=offsite from=main" "--run copy:offsite ran it"
grep -q 'result=success exit=0 copied=0 present=7' "$T/err" || soft_fail "second offsite copy: $(cat "$T/err")"
expect_exit 0 agent_env "$COFFER" agent --run copy:MONTHLY
grep -q 'target=monthly .*result=success exit=0 copied=0 present=2 not_kept=5 bytes_added=0 forgotten=0' "$T/err" ||
	soft_fail "second monthly copy: $(cat "$T/err")"
check_eq "$p_off" "$(packs off)" "offsite packs after a second copy"
check_eq "$p_mon" "$(packs mon)" "monthly packs after a second copy"
expect_exit 1 agent_env "$COFFER" agent --run copy:nope
assert_contains "$T/err" 'no copy target "nope" (configured: offsite, monthly)' "--run of an unknown target"

# --- without the broken target: healthy; a new backup goes to offsite only, the
# monthly copy waits for its tick ---------------------------------------------------
echo v2 > "$T/backup/app/settings.ini"
expect_exit 0 agent_env "$COFFER" agent --once
assert_contains "$T/err" "copy target=offsite" "offsite copies after the backup"
assert_not_contains "$T/err" "copy target=monthly" "monthly does not run before its tick"
grep -q 'target=offsite .*copied=1 present=7' "$T/err" || soft_fail "third offsite copy: $(grep target= "$T/err")"
expect_exit 0 agent_env "$COFFER" healthcheck
assert_contains "$T/out" "healthy" "healthcheck once the broken target is gone"
# monthly now: the new snapshot replaces this month's older one
expect_exit 0 agent_env "$COFFER" agent --run copy:monthly
grep -q 'target=monthly .*result=success exit=0 copied=1 .*forgotten=1' "$T/err" ||
	soft_fail "monthly after a new backup: $(grep target= "$T/err")"
check_eq 2 "$(mon --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" "monthly snapshots"
rm -rf "$T/r3"
expect_exit 0 mon restore latest --target "$T/r3"
check_eq v2 "$(cat "$T/r3$T/backup/app/settings.ini")" "monthly's latest is the new backup"
expect_exit 0 mon check

# --- a scheduled copy past its due time: unhealthy ------------------------------
due=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["copies"]["monthly"]["due_unix"])' "$T/state/state.json")
[ "$due" -gt "$(date +%s)" ] || soft_fail "monthly's due time $due is not in the future"
if command -v faketime > /dev/null; then
	expect_exit 0 agent_env ASAN_OPTIONS=verify_asan_link_order=0 faketime "@$((due + 1800))" "$COFFER" healthcheck
	assert_contains "$T/out" "healthy" "healthcheck half an hour after the monthly tick"
	expect_exit 1 agent_env ASAN_OPTIONS=verify_asan_link_order=0 faketime "@$((due + 7200))" "$COFFER" healthcheck
	assert_contains "$T/out" "the copy to monthly due at unix time $due is more than 3600 s overdue" \
		"healthcheck two hours after the monthly tick"
else
	note "faketime not installed: the overdue copy is not checked"
fi
e2e_done
