#!/bin/bash
# restore_report.sh - `restore --all` reports like the agent's jobs (issue
# 20): COFFER_WEBHOOK_URL gets a signed (Standard Webhooks, the agent's
# webhook code) coffer.restore.succeeded with each part's outcome, or
# coffer.restore.failed naming the part that failed while the others are
# "restored"; the restore's gauges (coffer_restore_last_success_timestamp_seconds
# and the others) are written to coffer-restore.prom beside COFFER_METRICS_FILE,
# a failure keeping the last success.  The failing part is a database loaded
# into a server that refuses the login (COFFER_TEST_MARIADB), else an SQLite
# file in use (the restore refused as a whole).
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/vol/a" "$T/vol/b" "$T/sq" "$T/metrics"
echo one > "$T/vol/a/one"
echo two > "$T/vol/b/two"
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("create table t(x)"); c.commit()' "$T/sq/app.db"
DBARGS=()
RARGS=()
MARIA=
if [ -n "${COFFER_TEST_MARIADB:-}" ] && command -v mariadb > /dev/null; then
	MARIA=1
	read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
	sql() { mariadb --no-defaults -N -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
	DB=rrep_$$_$RANDOM
	sql -e "CREATE DATABASE \`$DB\`; CREATE TABLE \`$DB\`.t (id INT PRIMARY KEY); INSERT INTO \`$DB\`.t VALUES (1);" ||
		fail "cannot create the test database"
	trap 'sql -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null; e2e_cleanup' EXIT
	base=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' \
		"$COFFER_TEST_MARIADB")
	DBARGS=(--mariadb "$base/$DB")
	RARGS=(--mariadb "$base/")
fi
cof -r "$R" backup "$T/vol/a" "$T/vol/b" --sqlite "$T/sq/app.db" "${DBARGS[@]}"
SNAP=$(latest_id "$R")
echo changed > "$T/vol/a/one"

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
"$PY" "$T/receiver.py" "$SECRET" "$T/hooks.jsonl" 0 > "$T/port" &
E2E_PIDS+=($!)
wait_for test -s "$T/port" || fail "the receiver did not start"
export COFFER_WEBHOOK_URL="http://127.0.0.1:$(cat "$T/port")/coffer" COFFER_WEBHOOK_SECRET="$SECRET"
export COFFER_METRICS_FILE="$T/metrics/coffer.prom" COFFER_DOCKER_HOST=none
PROM=$T/metrics/coffer-restore.prom
gauge() { awk -v n="$1" '$1 == n { print $2 }' "$PROM"; }

# --- a dry run reports nothing
cof -r "$R" restore latest --all --dry-run "${RARGS[@]}"
[ ! -e "$T/hooks.jsonl" ] || soft_fail "a dry run sent a webhook"
[ ! -e "$PROM" ] || soft_fail "a dry run wrote metrics"

# --- success
cof -r "$R" restore latest --all --yes "${RARGS[@]}"
assert_not_contains "$T/err" "${SECRET#whsec_}" "the secret in the output"
[ -s "$T/hooks.jsonl" ] || fail "no webhook received"
check_eq 1 "$(wc -l < "$T/hooks.jsonl")" "webhooks received"
tail -n 1 "$T/hooks.jsonl" > "$T/hook.json"
check_eq True "$(json_field "$T/hook.json" 'j["valid"]')" "webhook signature valid"
check_eq "coffer.restore.succeeded success 0 $SNAP" \
	"$(json_field "$T/hook.json" 'j["body"]["type"] + " " + j["body"]["data"]["status"] + " " + str(j["body"]["data"]["exit_code"]) + " " + j["body"]["data"]["snapshot_id"]')" \
	"webhook body"
WANT="volume $T/vol/a restored 1,volume $T/vol/b restored 0,sqlite $T/sq/app.db restored 0"
[ -z "$MARIA" ] || WANT="$WANT,database $DB restored -"
check_eq "$WANT" "$(json_field "$T/hook.json" '",".join("%s %s %s %s" % (p["kind"], p["source"], p["status"], p.get("files_written", "-")) for p in j["body"]["data"]["parts"])')" \
	"each part's outcome"
[ -s "$PROM" ] || fail "no restore metrics at $PROM"
OK1=$(gauge coffer_restore_last_success_timestamp_seconds)
check_eq 0 "$(gauge coffer_restore_last_run_status)" "status gauge after success"
"$PY" -c 'import sys,time; sys.exit(0 if abs(float(sys.argv[1]) - time.time()) < 600 else 1)' "$OK1" ||
	soft_fail "last success timestamp is not now: $OK1"
[ ! -e "$COFFER_METRICS_FILE" ] || soft_fail "the agent's own metrics file was written"

# --- a failure: named in the webhook, the last success kept
echo changed > "$T/vol/a/one"
if [ -n "$MARIA" ]; then
	expect_exit 1 "$COFFER" -r "$R" restore latest --all --yes --mariadb "mariadb://nobody:wrong@$MHOST:$MPORT/"
	tail -n 1 "$T/hooks.jsonl" > "$T/hook.json"
	check_eq "coffer.restore.failed failed" "$(json_field "$T/hook.json" 'j["body"]["type"] + " " + j["body"]["data"]["status"]')" "failure webhook"
	check_eq "volume restored,volume restored,sqlite restored,database failed" \
		"$(json_field "$T/hook.json" '",".join("%s %s" % (p["kind"], p["status"]) for p in j["body"]["data"]["parts"])')" \
		"the failed part is the database, the others restored"
	json_field "$T/hook.json" 'j["body"]["data"]["parts"][3]["error"]' | grep -q . || soft_fail "the failed part has no error"
	check_eq 1 "$(gauge coffer_restore_last_run_parts_failed)" "parts failed gauge"
else
	touch "$T/sq/app.db-shm"
	expect_exit 1 "$COFFER" -r "$R" restore latest --all --yes
	tail -n 1 "$T/hooks.jsonl" > "$T/hook.json"
	check_eq "coffer.restore.failed failed" "$(json_field "$T/hook.json" 'j["body"]["type"] + " " + j["body"]["data"]["status"]')" "failure webhook"
	json_field "$T/hook.json" 'j["body"]["data"]["error"]' | grep -q "app.db-shm" || soft_fail "the error names the -shm"
	rm "$T/sq/app.db-shm"
fi
check_eq True "$(json_field "$T/hook.json" 'j["valid"]')" "failure webhook signature valid"
check_eq 1 "$(gauge coffer_restore_last_run_status)" "status gauge after a failure"
check_eq "$OK1" "$(gauge coffer_restore_last_success_timestamp_seconds)" "the last success kept"

e2e_done
