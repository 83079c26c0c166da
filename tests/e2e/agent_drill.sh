#!/bin/bash
# agent_drill.sh - the agent's restore drill (COFFER_DRILL_SCHEDULE): after
# a backup of a volume and a MariaDB database, --once runs the drill (never
# run: due): the latest snapshot is restored into the scratch directory and
# verified, the dump loaded into a scratch database on the server; both are
# gone afterwards (a scratch database left by an earlier drill too), the real
# database untouched; the drill is reported in the log, the metrics
# (coffer_drill_last_success_timestamp_seconds) and the webhook
# (coffer.drill.succeeded).  It does not run again before its next tick;
# --run drill runs it now.  A server that cannot be reached fails the drill
# at stage databases; a flipped byte in a pack fails it at stage restore
# (exit 1, coffer.drill.failed, metric status 1, healthcheck unhealthy),
# and the scratch directory is removed then too.  Skipped (77) without
# COFFER_TEST_MARIADB.
. "$(dirname "$0")/lib.sh"
e2e_setup
[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set (see tests/run.sh)"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"

read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
sql() { mariadb --no-defaults -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
DB=drill_$$_$RANDOM
SCRATCH=coffer_drill_0_$DB
sql -e "CREATE DATABASE \`$DB\`; USE \`$DB\`;
	CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40));
	INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
	CREATE VIEW w AS SELECT v FROM t WHERE id > 1;" || fail "cannot create the test database"
trap 'sql -e "DROP DATABASE IF EXISTS \`$DB\`; DROP DATABASE IF EXISTS \`$SCRATCH\`" 2>/dev/null; e2e_cleanup' EXIT
base=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' \
	"$COFFER_TEST_MARIADB")
before=$(sql -N -e "CHECKSUM TABLE \`$DB\`.t EXTENDED" | cut -f2)

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/app" "$T/state"
randfile "$T/backup/app/blob" 3000000
echo settings > "$T/backup/app/settings.ini"

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

AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_HOST=web1 COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none
      COFFER_METRICS_FILE="$T/coffer.prom" COFFER_WEBHOOK_URL="http://127.0.0.1:$(cat "$T/port")/hook"
      COFFER_MARIADB="$base/$DB" COFFER_DRILL_SCHEDULE="0 4 * * 0")
agent_env() { env -i "${AENV[@]}" "$@"; }
metric() { sed -n "s/^$1\({[^}]*}\)\? //p" "$T/coffer.prom" | head -n 1; }
events() { "$PY" -c 'import json,sys; print(" ".join(e["type"] for e in map(json.loads, open(sys.argv[1]))))' "$T/hooks.jsonl"; }

# a scratch database an earlier drill left behind is dropped, not reused
sql -e "CREATE DATABASE \`$SCRATCH\`; CREATE TABLE \`$SCRATCH\`.leftover (x INT);" || fail "cannot create the leftover"

# --- the first job: backup, then the drill (never run: due) -----------------
expect_exit 0 agent_env "$COFFER" agent --once
cp "$T/err" "$T/run1.err"
grep -q 'coffer agent: job .*result=success exit=0' "$T/run1.err" || soft_fail "the backup: $(cat "$T/run1.err")"
grep -q 'coffer agent: drill .*result=success exit=0 snapshot=[0-9a-f]\{64\} files=3 verified=3 .*databases=1' "$T/run1.err" ||
	soft_fail "the drill's log line: $(grep 'drill' "$T/run1.err")"
check_eq "$(latest_id "$R")" "$(grep -o 'drill .*snapshot=[0-9a-f]*' "$T/run1.err" | sed 's/.*snapshot=//')" \
	"the drill restored the latest snapshot"
[ -e "$T/state/drill" ] && soft_fail "the scratch directory is left: $(find "$T/state/drill" | head)"
check_eq "" "$(sql -N -e "SHOW DATABASES LIKE 'coffer\\_drill%'")" "scratch databases after the drill"
check_eq "$before" "$(sql -N -e "CHECKSUM TABLE \`$DB\`.t EXTENDED" | cut -f2)" "the real database is untouched"
check_eq "coffer.job.succeeded coffer.drill.succeeded" "$(events)" "webhook events"
ts=$(metric coffer_drill_last_success_timestamp_seconds)
[ -n "$ts" ] && [ "$ts" -ge $(($(date +%s) - 600)) ] || soft_fail "drill last success metric: '$ts'"
check_eq 0 "$(metric coffer_drill_last_status)" "drill status metric"
check_eq 3 "$(metric coffer_drill_files_verified)" "drill files verified metric"
check_eq 0 "$(metric coffer_last_run_status)" "the backup's status metric after the drill"
expect_exit 0 agent_env "$COFFER" healthcheck

# --- not again before its tick; --run drill now ------------------------------
expect_exit 0 agent_env "$COFFER" agent --once
assert_not_contains "$T/err" "coffer agent: drill" "the drill before its next tick"
# a row written since the backup: the drill must load into its scratch name,
# not over the real database
sql -e "INSERT INTO \`$DB\`.t VALUES (4, 'since the backup')"
expect_exit 0 agent_env "$COFFER" agent --run drill
assert_contains "$T/err" "result=success exit=0" "--run drill"
assert_contains "$T/err" "databases=1" "--run drill loaded the dump"
check_eq 4 "$(sql -N -e "SELECT count(*) FROM \`$DB\`.t")" "rows of the real database after the drill"
ts=$(metric coffer_drill_last_success_timestamp_seconds)

# --- a server that cannot be reached: the drill fails at stage databases -------
expect_exit 1 agent_env COFFER_MARIADB="mariadb://$MUSER@127.0.0.1:1/$DB" "$COFFER" agent --run drill
grep -q 'coffer agent: drill .*result=failed exit=1 .*stage=databases error=' "$T/err" ||
	soft_fail "an unreachable server: $(cat "$T/err")"
[ -e "$T/state/drill" ] && soft_fail "the scratch directory is left after a failed load"

# --- a damaged pack: the drill fails at stage restore ----------------------
big=$(find "$R/data" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
size=$(stat -c %s "$big")
chmod u+w "$big"
flip_byte "$big" $((size / 2))
: > "$T/hooks.jsonl"
expect_exit 1 agent_env "$COFFER" agent --run drill
grep -q 'coffer agent: drill .*result=failed exit=1 .*stage=restore error=' "$T/err" ||
	soft_fail "a damaged pack: $(cat "$T/err")"
check_eq "coffer.drill.failed" "$(events)" "webhook event of the failed drill"
check_eq 1 "$(metric coffer_drill_last_status)" "drill status metric after the failure"
check_eq "$ts" "$(metric coffer_drill_last_success_timestamp_seconds)" "the last success is kept"
[ -e "$T/state/drill" ] && soft_fail "the scratch directory is left after a failed restore"
expect_exit 1 agent_env "$COFFER" healthcheck
assert_contains "$T/out" "the last restore drill failed" "healthcheck after a failed drill"
e2e_done
