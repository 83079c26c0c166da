#!/bin/bash
# hostile_store.sh - a store that means harm neither exhausts memory nor hangs coffer.
#
# Against the S3 server named by COFFER_TEST_S3 (skipped without it), a
# repository of a few snapshots is read through tests/infra/hostile_s3.py,
# a proxy that alters the real store's answers, one mode at a time:
#   huge-body     a snapshot GET answered with 50 GiB (chunked), or with
#                 2 GiB announced: snapshots warns naming the snapshot and the
#                 16 MiB limit and lists the others; check fails naming it;
#                 restore of that snapshot fails naming it
#   trickle       a snapshot sent at 1 byte/s: below the 1 KiB/s floor the
#                 transfer is retried (twice trickled, then served: the
#                 listing is complete) or given up on with a message; and
#                 SIGTERM during the trickle ends coffer within 1 s, exit 130
#   repeat-token  a listing whose continuation token repeats: an error
#                 naming snapshots/ and the token
#   dup-keys      every listed object named twice: each snapshot listed
#                 once, check clean, restore bit-exact
#   endless-pages a listing that never ends: an error naming snapshots/
# Every command runs with a bounded wait (a hang fails the test, it does not
# stall it), under a 4 GiB address-space limit (a regression fails with "out
# of memory" rather than take the machine's), and its peak RSS must stay
# under 200 MiB.
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_S3:-}" ] || skip "COFFER_TEST_S3 is not set (see tests/run.sh)"
[ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || skip "no AWS_* credentials"
e2e_setup

HS=${COFFER_SOURCE_DIR:-$(dirname "$0")/../..}/tests/infra/hostile_s3.py
[ -f "$HS" ] || fail "hostile_s3.py not found at $HS"
endpoint=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^(https?://[^/]+)/.*#\1#')
base=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^https?://[^/]+/([^/]+).*#\1#')
bucket=$(printf '%.40s-hs-%s' "$base" "$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')")
DIRECT=s3:$endpoint/$bucket/repo
# Peak RSS bound: the largest answer kept is a 16 MiB object (a buffer that
# doubles: at most 32 MiB) on top of coffer's own ~15-30 MiB.  Under
# AddressSanitizer freed memory is kept in its 256 MiB quarantine and the
# address space is reserved for its shadow: the bound grows by the
# quarantine and no address-space limit is set.
RSS_MAX_KIB=$((200 * 1024))
AS_LIMIT=$((4 << 30))
if ldd "$COFFER" 2>/dev/null | grep -q libasan; then
	RSS_MAX_KIB=$(((200 + 256) * 1024))
	AS_LIMIT=0
fi
export AS_LIMIT

# bounded SECS CMD...: run CMD (stdout $T/out, stderr $T/err) with at most
# SECS seconds and 4 GiB of address space; sets RC (124: killed at the
# bound), RSS (peak, KiB) and SECS_TAKEN.
cat > "$T/bounded.py" << 'EOF'
import os, resource, subprocess, sys, time
secs = float(sys.argv[1])
def limit():
    n = int(os.environ.get("AS_LIMIT", "0"))
    if n:
        resource.setrlimit(resource.RLIMIT_AS, (n, n))
t0 = time.monotonic()
with open(sys.argv[2], "wb") as out, open(sys.argv[3], "wb") as err:
    p = subprocess.Popen(sys.argv[4:], stdout=out, stderr=err, preexec_fn=limit)
    try:
        rc = p.wait(timeout=secs)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = 124
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "%.2f" % (time.monotonic() - t0))
EOF
bounded()
{
	local secs=$1
	shift
	read -r RC RSS SECS_TAKEN < <("$PY" "$T/bounded.py" "$secs" "$T/out" "$T/err" "$@")
	note "  $(basename "$1") ${*:2}: exit $RC, peak RSS $((RSS / 1024)) MiB, $SECS_TAKEN s"
	[ -s "$T/err" ] && note "    stderr: $(grep -v "retrying in" "$T/err" | head -1 | cut -c1-400)"
	[ "$RC" != 124 ] || { sed 's/^/    /' "$T/err" | tail -5 >&2; soft_fail "$*: no end within $secs s"; }
	[ "$RSS" -lt "$RSS_MAX_KIB" ] || soft_fail "$*: peak RSS $RSS KiB, over $RSS_MAX_KIB"
}

# expect_rc WANT WHAT: the last bounded command exited with WANT
expect_rc()
{
	[ "$RC" = "$1" ] || { sed 's/^/    /' "$T/out" "$T/err" | head -20 >&2; soft_fail "$2: exit $RC, expected $1"; }
}

# err_has STRING WHAT: stderr of the last bounded command names STRING
err_has()
{
	grep -qiF -- "$1" "$T/err" || { sed 's/^/    /' "$T/err" | head -10 >&2; soft_fail "$2: '$1' not in stderr"; }
}

HS_PID=
start_hostile()
{
	rm -f "$T/port" "$T/hs.log"
	"$PY" "$HS" --upstream "$endpoint" --port-file "$T/port" --log "$T/hs.log" "$@" > /dev/null 2>> "$T/hs.err" &
	HS_PID=$!
	E2E_PIDS+=("$HS_PID")
	wait_for test -s "$T/port" || fail "hostile_s3.py did not start: $(tail -5 "$T/hs.err")"
	: >> "$T/hs.log"
	VIA=s3:http://127.0.0.1:$(cat "$T/port")/$bucket/repo
	note "mode $*"
}

stop_hostile()
{
	kill "$HS_PID" 2>/dev/null
	wait "$HS_PID" 2>/dev/null
}

# --- a small repository of 4 snapshots, written directly ---
S=$T/src
mkdir -p "$S/d"
for i in $(seq 1 20); do randfile "$S/d/f$i" $((RANDOM * 4 + 1)); done
seq 1 20000 > "$S/text"
init_repo "$DIRECT"
N=4
for i in $(seq 1 $N); do
	randfile "$S/d/changing" $((i * 1000 + 7))
	expect_exit 0 "$COFFER" -r "$DIRECT" backup --host h --time "2024-01-01 00:00:0$i" "$S"
done
expect_exit 0 "$COFFER" -r "$DIRECT" --json snapshots
json_field "$T/out" '"\n".join(sorted(s["id"] for s in j))' > "$T/ids"
check_eq "$N" "$(wc -l < "$T/ids")" "snapshots written"
LATEST=$(json_field "$T/out" 'sorted(j, key=lambda s: s["time"])[-1]["id"]')

# --- huge-body ---
start_hostile --mode huge-body --times 1
bounded 120 "$COFFER" -r "$VIA" --json snapshots
expect_rc 0 "huge-body snapshots"
err_has "16 MiB limit" "huge-body snapshots"
err_has "snapshots/" "huge-body snapshots: the object is named"
check_eq $((N - 1)) "$(json_field "$T/out" 'len(j)')" "huge-body: the other snapshots are listed"
# the proxy logs the end when its next write finds coffer gone
wait_for grep -q "huge-body end" "$T/hs.log" || soft_fail "huge-body: no huge answer was sent"
note "  $(grep "huge-body end" "$T/hs.log" | head -1)"
stop_hostile
start_hostile --mode huge-body
bounded 120 "$COFFER" -r "$VIA" check
[ "$RC" != 0 ] || soft_fail "huge-body check: exit 0"
err_has "16 MiB limit" "huge-body check"
bounded 120 "$COFFER" -r "$VIA" restore "$LATEST" --target "$T/r-huge"
[ "$RC" != 0 ] || soft_fail "huge-body restore: exit 0"
err_has "16 MiB limit" "huge-body restore"
stop_hostile
start_hostile --mode huge-body --announce --huge-bytes $((2 << 30))
bounded 120 "$COFFER" -r "$VIA" --json snapshots
expect_rc 0 "huge-body (announced) snapshots"
err_has "announces more than the 16 MiB limit" "huge-body (announced) snapshots"
check_eq 0 "$(json_field "$T/out" 'len(j)')" "huge-body (announced): no snapshot can be read"
stop_hostile

# --- trickle ---
# A test-only rate floor of 1 KiB/s over 2 s instead of 60 s.
start_hostile --mode trickle --times 2
COFFER_TEST_S3_LOW_SPEED=1024/2 bounded 120 "$COFFER" -r "$VIA" --json snapshots
expect_rc 0 "trickle (twice) snapshots"
check_eq "$N" "$(json_field "$T/out" 'len(j)')" "trickle (twice): every snapshot is listed"
check_eq 2 "$(grep -c "trickle start" "$T/hs.log")" "trickled answers"
stop_hostile
start_hostile --mode trickle
# at most 8 attempts of about 2 s (plus curl's 5 s speed average) and
# backoffs of 0.2..12.8 s: about 80 s
COFFER_TEST_S3_LOW_SPEED=1024/2 bounded 150 "$COFFER" -r "$VIA" snapshots
expect_rc 1 "trickle (always) snapshots"
err_has "giving up after 8 attempts" "trickle (always) snapshots"
err_has "too slow" "trickle (always) snapshots"
stop_hostile

# SIGTERM in the middle of a trickled answer (the default 60 s floor
# window): out within 1 s, exit 130
start_hostile --mode trickle
"$PY" - "$COFFER" "$VIA" "$T/hs.log" > "$T/term" << 'EOF'
import signal, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "-r", sys.argv[2], "snapshots"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 60
while "trickle start" not in open(sys.argv[3]).read() and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(2)  # well inside the transfer
t0 = time.monotonic()
p.send_signal(signal.SIGTERM)
try:
    rc = p.wait(timeout=10)
except subprocess.TimeoutExpired:
    p.kill()
    p.wait()
    rc = "none"
print(rc, "%.3f" % (time.monotonic() - t0))
EOF
read -r term_rc term_secs < "$T/term"
note "  SIGTERM during a trickle: exit $term_rc after $term_secs s"
check_eq 130 "$term_rc" "exit code after SIGTERM"
"$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 1.0 else 1)" "$term_secs" ||
	soft_fail "SIGTERM honoured after $term_secs s, not within 1 s"
stop_hostile

# --- repeat-token (one key per page, so that there are pages to repeat) ---
start_hostile --mode repeat-token
COFFER_S3_LIST_MAX_KEYS=1 bounded 60 "$COFFER" -r "$VIA" snapshots
expect_rc 1 "repeat-token snapshots"
err_has "snapshots/" "repeat-token snapshots: the directory is named"
err_has "continuation token" "repeat-token snapshots"
COFFER_S3_LIST_MAX_KEYS=1 bounded 60 "$COFFER" -r "$VIA" check
[ "$RC" != 0 ] || soft_fail "repeat-token check: exit 0"
err_has "continuation token" "repeat-token check"
stop_hostile

# --- dup-keys: a correct result ---
start_hostile --mode dup-keys
COFFER_S3_LIST_MAX_KEYS=3 bounded 60 "$COFFER" -r "$VIA" --json snapshots
expect_rc 0 "dup-keys snapshots"
json_field "$T/out" '"\n".join(sorted(s["id"] for s in j))' > "$T/ids-dup"
cmp -s "$T/ids" "$T/ids-dup" || soft_fail "dup-keys: snapshots listed $(wc -l < "$T/ids-dup") times, not the $N"
bounded 120 "$COFFER" -r "$VIA" check --read-data
expect_rc 0 "dup-keys check"
grep -qi "no errors" "$T/out" || soft_fail "dup-keys check: not clean"
! grep -qi "warning" "$T/err" || { sed 's/^/    /' "$T/err" | head >&2; soft_fail "dup-keys check: warnings"; }
bounded 120 "$COFFER" -r "$VIA" restore "$LATEST" --target "$T/r-dup"
expect_rc 0 "dup-keys restore"
compare_trees "$S" "$T/r-dup$S"
grep -q "dup-keys" "$T/hs.log" || soft_fail "dup-keys: no listing was altered"
stop_hostile

# --- endless-pages ---
start_hostile --mode endless-pages
bounded 60 "$COFFER" -r "$VIA" snapshots
expect_rc 1 "endless-pages snapshots"
err_has "snapshots/" "endless-pages snapshots: the directory is named"
err_has "does not end" "endless-pages snapshots"
stop_hostile

# the repository itself is untouched by all this
expect_exit 0 "$COFFER" -r "$DIRECT" check
assert_contains "$T/out" "no errors" "check directly"
e2e_done
