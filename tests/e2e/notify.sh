#!/bin/bash
# notify.sh - COFFER_NOTIFY_URLS against loopback receivers
# (tests/infra/receiver.py).  A good backup: the Healthchecks-style URL gets
# POST /start, then POST of the URL itself (the body names the job and the
# snapshot); the Uptime Kuma push URL gets status=up with msg and ping (its
# own query replaced); ntfy and the {status} URL hear nothing at level
# error.  A failing backup (a dump command exits 3): /start then /fail whose
# body holds the error line; Kuma status=down; ntfy a POST with Priority
# high, a Title naming the failure and the error in the body; the generic
# URL /backup/failed with the host.  The next good backup is a recovery:
# ntfy and the generic URL hear of it.  Level info: the start events too,
# and a copy (copy:off) and a restore drill report their own start and
# outcome.  A receiver that is down does not fail the backup: exit 0, the
# failure logged naming the URL (its token redacted), and counted in
# coffer_notify_failures_total{kind="healthchecks"}.  A URL of no kind is
# refused at start, one line, naming the key.
. "$(dirname "$0")/lib.sh"
e2e_setup
RECEIVER=${COFFER_SOURCE_DIR:-$(dirname "$0")/../..}/tests/infra/receiver.py

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/app" "$T/state"
randfile "$T/backup/app/blob" 100000
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none COFFER_HOST=notify-host)
agent_env() { env -i "${AENV[@]}" "$@"; }

"$PY" "$RECEIVER" "$T/req.jsonl" > "$T/port" &
E2E_PIDS+=($!)
wait_for test -s "$T/port" || fail "the receiver did not start"
P=$(cat "$T/port")
B=http://127.0.0.1:$P
URLS="hc+$B/hc/ABC, kuma+$B/api/push/TOK?status=up&msg=OK&ping= ntfy+$B/ntfy/backups $B/gen/{job}/{status}?host={host}"
# requests seen since line $1 of the log: "METHOD PATH" a line
reqs() { tail -n +"$(( $1 + 1 ))" "$T/req.jsonl" | "$PY" -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l); print(r["method"], r["path"])'; }
seen() { [ -s "$T/req.jsonl" ] && wc -l < "$T/req.jsonl" || echo 0; }
# the record of the first request since line $1 whose path is $2, as JSON, into $T/rec.json
rec() { tail -n +"$(( $1 + 1 ))" "$T/req.jsonl" | "$PY" -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    if r["path"] == sys.argv[1]:
        print(json.dumps(r)); break' "$2" > "$T/rec.json"; [ -s "$T/rec.json" ] || soft_fail "no request to $2"; }

# --- a URL of no kind is refused -------------------------------------------
expect_exit 1 agent_env COFFER_NOTIFY_URLS="https://hc-ping.com/secret-uuid" "$COFFER" agent --once
assert_one_line_err "a notify URL of no kind"
assert_contains "$T/err" "COFFER_NOTIFY_URLS" "the refusal names the key"
assert_contains "$T/err" "hc+" "the refusal says how to name the kind"

# --- a good backup ----------------------------------------------------------
n0=$(seen)
expect_exit 0 agent_env COFFER_NOTIFY_URLS="$URLS" "$COFFER" agent --once
check_eq "POST /hc/ABC/start
POST /hc/ABC
GET /api/push/TOK" "$(reqs "$n0")" "a good backup's requests (level error: no ntfy, no generic)"
rec "$n0" /hc/ABC
SNAP=$(latest_id "$R")
json_field "$T/rec.json" 'j["body"]' | grep "coffer backup on notify-host: success: snapshot ${SNAP:0:8}" > /dev/null ||
	soft_fail "the success ping's body: $(json_field "$T/rec.json" 'j["body"]')"
rec "$n0" /api/push/TOK
check_eq "up" "$(json_field "$T/rec.json" '",".join(j["query"]["status"])')" "Kuma status of a good backup"
json_field "$T/rec.json" 'j["query"]["msg"][0]' | grep "^backup success: snapshot ${SNAP:0:8}" > /dev/null ||
	soft_fail "Kuma msg: $(json_field "$T/rec.json" 'j["query"]')"
json_field "$T/rec.json" 'j["query"]["ping"][0]' | grep -qE '^[0-9]+$' || soft_fail "Kuma ping is not milliseconds"

# --- a failing backup -------------------------------------------------------
n1=$(seen)
expect_exit 1 agent_env COFFER_NOTIFY_URLS="$URLS" COFFER_STDIN_COMMANDS="db.sql=echo partial; exit 3" \
	"$COFFER" agent --once
check_eq "POST /hc/ABC/start
POST /hc/ABC/fail
GET /api/push/TOK
POST /ntfy/backups
GET /gen/backup/failed" "$(reqs "$n1")" "a failing backup's requests"
rec "$n1" /hc/ABC/fail
json_field "$T/rec.json" 'j["body"]' > "$T/fail-body"
assert_contains "$T/fail-body" "command 'echo partial; exit 3' exited with status 3" "the /fail body holds the error line"
assert_contains "$T/fail-body" "coffer agent: job started" "the /fail body holds the log tail"
rec "$n1" /api/push/TOK
check_eq "down" "$(json_field "$T/rec.json" 'j["query"]["status"][0]')" "Kuma status of a failed backup"
rec "$n1" /ntfy/backups
check_eq "high" "$(json_field "$T/rec.json" 'j["headers"]["priority"]')" "ntfy priority of a failure"
check_eq "coffer backup on notify-host: failed" "$(json_field "$T/rec.json" 'j["headers"]["title"]')" "ntfy title"
json_field "$T/rec.json" 'j["body"]' | grep "exited with status 3" || soft_fail "the ntfy message lacks the error"
rec "$n1" /gen/backup/failed
check_eq "notify-host" "$(json_field "$T/rec.json" 'j["query"]["host"][0]')" "{host} in the generic URL"

# --- the next good backup is a recovery --------------------------------------
n2=$(seen)
expect_exit 0 agent_env COFFER_NOTIFY_URLS="$URLS" "$COFFER" agent --once
check_eq "POST /hc/ABC/start
POST /hc/ABC
GET /api/push/TOK
POST /ntfy/backups
GET /gen/backup/success" "$(reqs "$n2")" "a recovery's requests"
rec "$n2" /ntfy/backups
check_eq "coffer backup on notify-host: success (recovered)" "$(json_field "$T/rec.json" 'j["headers"]["title"]')" \
	"ntfy title of a recovery"
check_eq "default" "$(json_field "$T/rec.json" 'j["headers"]["priority"]')" "ntfy priority of a recovery"

# --- level info: start events; a copy and a drill report too -----------------
init_repo "$T/repo2"
n3=$(seen)
expect_exit 0 agent_env COFFER_NOTIFY_URLS="ntfy+$B/ntfy/all $B/gen/{job}/{status}" COFFER_NOTIFY_LEVEL=info \
	COFFER_COPY_TO_OFF_REPOSITORY="$T/repo2" COFFER_COPY_TO_OFF_PASSWORD_FILE="$PWFILE" \
	COFFER_DRILL_SCHEDULE='0 3 * * *' "$COFFER" agent --once
check_eq "POST /ntfy/all
GET /gen/backup/start
POST /ntfy/all
GET /gen/backup/success
POST /ntfy/all
GET /gen/copy:off/start
POST /ntfy/all
GET /gen/copy:off/success
POST /ntfy/all
GET /gen/drill/start
POST /ntfy/all
GET /gen/drill/success" "$(reqs "$n3")" "level info: backup, copy and drill, each start and outcome"
tail -n +"$(( n3 + 1 ))" "$T/req.jsonl" | "$PY" -c '
import json, sys
t = [json.loads(l)["headers"].get("title") for l in sys.stdin]
t = [x for x in t if x]
want = ["coffer %s on notify-host: %s" % (j, s) for j in ("backup", "copy:off", "drill") for s in ("started", "success")]
assert t == want, t' || soft_fail "ntfy titles at level info"

# --- a receiver that is down does not fail the backup ------------------------
DOWN=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_exit 0 agent_env COFFER_NOTIFY_URLS="hc+http://127.0.0.1:$DOWN/ping/x?token=hushhush" \
	COFFER_METRICS_FILE="$T/coffer.prom" "$COFFER" agent --once
assert_contains "$T/err" "notify healthchecks http://127.0.0.1:$DOWN/ping/x/start?token=***" "the failed start ping is logged"
assert_not_contains "$T/err" "hushhush" "the token in the log"
grep -q "^coffer_notify_failures_total{kind=\"healthchecks\"} 2$" "$T/coffer.prom" ||
	soft_fail "coffer_notify_failures_total after a start and an end ping failed: $(grep notify "$T/coffer.prom")"
check_eq 4 "$("$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
	"snapshots: every good backup wrote one, the failing one none"
e2e_done
