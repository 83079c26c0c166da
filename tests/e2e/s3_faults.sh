#!/bin/bash
# s3_faults.sh - an unreliable network and a throttling store lose nothing.
#
# Against the S3 server named by COFFER_TEST_S3 (skipped without it), through
# tests/infra/faultproxy.py, one fault kind at a time and then all at once:
#   503 SlowDown on ~30% of requests, TCP resets (before and after the server
#   acted), stalls longer than the client's stall timeout, truncated bodies.
# Each backup, restore and check --read-data through the proxy must succeed
# (the client retries) and inject at least one fault.  Afterwards, directly
# against the server: check --read-data is clean and every snapshot made so
# far restores bit-exact.  Finally an unreachable endpoint: a clear error
# after bounded retries, and no snapshot written.
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_S3:-}" ] || skip "COFFER_TEST_S3 is not set (see tests/run.sh)"
[ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || skip "no AWS_* credentials"
e2e_setup

FP=${COFFER_SOURCE_DIR:-$(dirname "$0")/../..}/tests/infra/faultproxy.py
[ -f "$FP" ] || fail "faultproxy.py not found at $FP"
endpoint=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^(https?://[^/]+)/.*#\1#')
base=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^https?://[^/]+/([^/]+).*#\1#')
bucket=$(printf '%.40s-flt-%s' "$base" "$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')")
DIRECT=s3:$endpoint/$bucket/repo
# A stall is noticed after 1 s without a byte (plus curl's 5 s speed window),
# far sooner than the default 60 s, so the test stays short.
export COFFER_S3_STALL_TIMEOUT=1

PROXY_PID=
start_proxy()
{
	rm -f "$T/port" "$T/stats"
	# At most 3 faults in a row for one request, 8 attempts by default: a run
	# can only fail if retrying is broken, not by an unlucky draw.
	"$PY" "$FP" --upstream "$endpoint" --port-file "$T/port" --stats "$T/stats" --max-in-a-row 3 "$@" \
		> /dev/null 2>> "$T/proxy.log" &
	PROXY_PID=$!
	E2E_PIDS+=("$PROXY_PID")
	wait_for test -s "$T/port" || fail "faultproxy did not start: $(tail -5 "$T/proxy.log")"
	VIA=s3:http://127.0.0.1:$(cat "$T/port")/$bucket/repo
}

stop_proxy()
{
	kill "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
}

faults_of()
{
	json_field "$T/stats" "j['faults']['$1']"
}

S=$T/src
mkdir -p "$S/d"
for i in $(seq 1 30); do randfile "$S/d/f$i" $((RANDOM * 8 + 1)); done
randfile "$S/big" $((3 << 20))
seq 1 50000 > "$S/text"

declare -A SAVED # snapshot id -> copy of the tree it holds
backup_and_keep()
{
	local repo=$1 what=$2
	expect_exit 0 "$COFFER" -r "$repo" backup --host h "$S"
	local id
	id=$(latest_id "$DIRECT")
	cp -a "$S" "$T/saved-$id"
	SAVED[$id]=$T/saved-$id
	note "$what: snapshot $id"
}

# the earlier state: made directly, must survive everything that follows
init_repo "$DIRECT"
backup_and_keep "$DIRECT" "direct"

phase()
{
	local name=$1 kind=$2
	shift 2
	start_proxy "$@"
	randfile "$S/d/changed-$name" $((RANDOM * 4 + 100))
	randfile "$S/d/f1" $((RANDOM * 8 + 1))
	local t0=$SECONDS
	backup_and_keep "$VIA" "$name backup"
	rm -rf "$T/r"
	expect_exit 0 "$COFFER" -r "$VIA" restore latest --target "$T/r"
	compare_trees "$S" "$T/r$S"
	expect_exit 0 "$COFFER" -r "$VIA" check --read-data
	assert_contains "$T/out" "no errors" "$name: check --read-data through the proxy"
	stop_proxy
	local n
	if [ "$kind" = all ]; then
		n=$(json_field "$T/stats" "sum(j['faults'].values())")
	else
		n=$(faults_of "$kind")
	fi
	note "$name: $n faults injected in $(json_field "$T/stats" "j['requests']") requests, $((SECONDS - t0)) s"
	[ "$n" -gt 0 ] || soft_fail "$name: no fault was injected"
}

phase slowdown slowdown --slowdown 30% --seed 7
phase reset reset --reset 5
phase stall stall --stall 9 --stall-seconds 4
phase truncate truncate --truncate 3
phase all all --slowdown 30% --reset 7 --stall 11 --stall-seconds 3 --truncate 5 --seed 11

# directly against the server: clean, and everything restores bit-exact
expect_exit 0 "$COFFER" -r "$DIRECT" check --read-data
assert_contains "$T/out" "no errors" "check --read-data directly"
expect_exit 0 "$COFFER" -r "$DIRECT" --json snapshots
check_eq "${#SAVED[@]}" "$(json_field "$T/out" 'len(j)')" "snapshot count"
for id in "${!SAVED[@]}"; do
	rm -rf "$T/r"
	expect_exit 0 "$COFFER" -r "$DIRECT" restore "$id" --target "$T/r"
	compare_trees "${SAVED[$id]}" "$T/r$S"
done

# an endpoint that refuses every connection: bounded retries, a clear error,
# no snapshot (the port was the proxy's, now closed)
dead=s3:http://127.0.0.1:$(cat "$T/port")/$bucket/repo
t0=$SECONDS
expect_fail "$COFFER" -r "$dead" backup --host h "$S"
assert_contains "$T/err" "giving up after" "unreachable endpoint"
assert_contains "$T/err" "127.0.0.1:$(cat "$T/port")" "the endpoint is named"
assert_le $((SECONDS - t0)) 90 "seconds spent on an unreachable endpoint"
expect_exit 0 "$COFFER" -r "$DIRECT" --json snapshots
check_eq "${#SAVED[@]}" "$(json_field "$T/out" 'len(j)')" "snapshot count after the failed backup"
e2e_done
