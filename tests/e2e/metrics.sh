#!/bin/bash
# metrics.sh - the agent's Prometheus metrics pass `promtool check metrics`
# (Debian's prometheus package), written to COFFER_METRICS_FILE and served;
# COFFER_METRICS_LISTEN takes IPv6 addresses: [::1]:PORT answers on the
# IPv6 loopback, [::]:PORT on IPv6 and IPv4 (dual stack); an address that
# is neither IPv4 nor bracketed IPv6 is refused when the config is read.
# The main repository's families carry host and repository labels (the
# location without credentials); a scheduled check's result
# (coffer_check_last_success, coffer_check_errors, its times) and the
# repository's size (coffer_repository_size_bytes = the bytes of its packs
# on disk) are exported; a check that finds a flipped byte shows errors and
# keeps the last success's time.
. "$(dirname "$0")/lib.sh"
e2e_setup
command -v promtool > /dev/null || skip "promtool is not installed (Debian package prometheus)"
command -v curl > /dev/null || skip "curl is not installed"

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/app" "$T/state"
echo data > "$T/backup/app/file"
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none COFFER_HOST=m-host)
LAB="{host=\"m-host\",repository=\"$R\"}"
# the value of the sample NAME{labels} exactly, or "absent"
sample() { "$PY" -c '
import sys
for l in open(sys.argv[1]):
    k, _, v = l.rstrip("\n").rpartition(" ")
    if k == sys.argv[2]:
        print(v); break
else:
    print("absent")' "$T/coffer.prom" "$1"; }
packbytes() { find "$R/data" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

expect_exit 0 env -i "${AENV[@]}" COFFER_METRICS_FILE="$T/coffer.prom" COFFER_CHECK_SCHEDULE='0 3 * * *' \
	COFFER_CHECK_READ_DATA_SUBSET=100% "$COFFER" agent --once
promtool check metrics < "$T/coffer.prom" > "$T/promtool.out" 2>&1 ||
	{ cat "$T/promtool.out" >&2; fail "promtool check metrics rejects the metrics file"; }
assert_contains "$T/coffer.prom" 'coffer_build_info{version="' "build info"
check_eq 1 "$(sample "coffer_snapshots$LAB")" "snapshot count (a gauge without _total), labelled host and repository"
check_eq 0 "$(sample "coffer_last_run_status$LAB")" "job status, labelled"
check_eq 1 "$(sample "coffer_check_last_success$LAB")" "the scheduled check's result"
check_eq 0 "$(sample "coffer_check_errors$LAB")" "the scheduled check's problems"
[ "$(sample "coffer_check_last_success_timestamp_seconds$LAB")" != absent ] || soft_fail "no check success time"
check_eq "$(packbytes)" "$(sample "coffer_repository_size_bytes$LAB")" "repository size = the packs' bytes on disk"
check_eq "$(find "$R/data" -type f | wc -l)" "$(sample "coffer_repository_packs$LAB")" "repository packs"
check_eq 0 "$(sample 'coffer_notify_failures_total{kind="webhook"}')" "no failed webhook"
OKTS=$(sample "coffer_check_last_success_timestamp_seconds$LAB")

# a damaged pack: the next check (made due again) finds it
PACK=$(find "$R/data" -type f | head -n 1)
flip_byte "$PACK" $(( $(stat -c %s "$PACK") / 2 ))
"$PY" -c '
import json, sys
p = sys.argv[1]; j = json.load(open(p)); j["agent"]["last_check_unix"] = 1; json.dump(j, open(p, "w"))' "$T/state/state.json"
expect_exit 1 env -i "${AENV[@]}" COFFER_METRICS_FILE="$T/coffer.prom" COFFER_CHECK_SCHEDULE='0 3 * * *' \
	COFFER_CHECK_READ_DATA_SUBSET=100% "$COFFER" agent --once
promtool check metrics < "$T/coffer.prom" > "$T/promtool.out" 2>&1 ||
	{ cat "$T/promtool.out" >&2; fail "promtool check metrics rejects the metrics file after a failed check"; }
check_eq 0 "$(sample "coffer_check_last_success$LAB")" "a check that found a damaged pack"
e=$(sample "coffer_check_errors$LAB")
[ "$e" != absent ] && [ "$e" -ge 1 ] || soft_fail "coffer_check_errors after a damaged pack: $e"
check_eq "$OKTS" "$(sample "coffer_check_last_success_timestamp_seconds$LAB")" "the last good check's time is kept"
check_eq "$(packbytes)" "$(sample "coffer_repository_size_bytes$LAB")" "repository size after the second backup"

freeport() { "$PY" -c 'import socket,sys; s=socket.socket(socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET); s.bind(("::1" if sys.argv[1] == "6" else "127.0.0.1", 0)); print(s.getsockname()[1])' "$1"; }

# serve LISTEN URL NAME: start the agent serving on LISTEN, fetch URL
# into $T/NAME.prom, stop the agent
serve()
{
	printf 'COFFER_SCHEDULE=@hourly\nCOFFER_METRICS_LISTEN=%s\n' "$1" > "$T/agent.env"
	env -i "${AENV[@]}" COFFER_CONFIG_FILE="$T/agent.env" "$COFFER" agent > "$T/$3.out" 2> "$T/$3.err" &
	local pid=$!
	E2E_PIDS+=($pid)
	fetched() { curl -sfg "$2" > "$T/$3.prom" 2> /dev/null && grep -q coffer_next_run "$T/$3.prom"; }
	wait_for fetched "$@" || { cat "$T/$3.err" >&2; soft_fail "no metrics at $2 (listening on $1)"; }
	kill -TERM $pid
	wait $pid
}

P4=$(freeport 4)
serve "127.0.0.1:$P4" "http://127.0.0.1:$P4/metrics" v4
promtool check metrics < "$T/v4.prom" > "$T/promtool.out" 2>&1 ||
	{ cat "$T/promtool.out" >&2; fail "promtool check metrics rejects the served metrics"; }

if "$PY" -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2> /dev/null; then
	P6=$(freeport 6)
	serve "[::1]:$P6" "http://[::1]:$P6/metrics" v6
	P6=$(freeport 6)
	serve "[::]:$P6" "http://[::1]:$P6/metrics" any6
	# dual stack: [::] answers on IPv4 too
	P6=$(freeport 4)
	serve "[::]:$P6" "http://127.0.0.1:$P6/metrics" any4
else
	note "no IPv6 loopback in this kernel: the [::1] and [::] checks are skipped"
fi

# refused at configuration time, naming the key
for bad in "::1:9150" "[::1:9150" "[1.2.3.4]:9150" "localhost:9150" "[::1]:0"; do
	expect_exit 1 env -i "${AENV[@]}" COFFER_METRICS_LISTEN="$bad" "$COFFER" agent --print-config
	assert_contains "$T/err" "COFFER_METRICS_LISTEN" "refusal of $bad names the key"
done
e2e_done
