#!/bin/bash
# keys_hostile.sh - key files a hostile store adds do not make an open cost
# minutes.  Key files asking Argon2id for 100 passes of 4 GiB (about 2100x the
# default's work) or for less memory than the format's floor are refused
# before any key derivation, each named in a warning; opening with the right
# password still works and takes a bounded time (derived from the cost of one
# default open, far below one hostile derivation); a wrong password is still
# "wrong password" (exit 12) in that bound.  The key file that opened the
# repository is remembered in the cache directory (its name only, no secret)
# and tried first, so an expensive but legal key file that sorts first is not
# even tried.  init / key add cannot create key files above the ceiling.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
# the default KDF (3 passes, 64 MiB): its cost is the unit of the bounds
expect_exit 0 "$COFFER" -r "$R" init
mkdir -p "$T/src" && echo hello > "$T/src/f"
cof -r "$R" backup "$T/src"
LEGIT=$(ls "$R/keys")

now_ms() { date +%s%3N; }
# open_ms CACHE [coffer args]: time one `snapshots` (an open) in ms -> $MS
open_ms()
{
	local cache=$1 t0
	shift
	t0=$(now_ms)
	COFFER_CACHE_DIR=$cache timeout -s KILL "$TIMEOUT" "$COFFER" -r "$R" "$@" snapshots > "$T/out" 2> "$T/err"
	RC=$?
	MS=$(( $(now_ms) - t0 ))
}

# The unit: the slowest of three default opens without any hint.  (SIGKILL:
# an Argon2id derivation does not stop for SIGTERM.)
TIMEOUT=60
BASE=0
for i in 1 2 3; do
	open_ms off
	[ "$RC" = 0 ] || fail "a plain open failed: $(cat "$T/err")"
	[ "$MS" -gt "$BASE" ] && BASE=$MS
done
# A hostile key file costs 100 x 4096 MiB / (3 x 64 MiB) = 2133 default
# derivations; the bound allows 10 (plus 1 s for process start-up).
BOUND=$(( 10 * BASE + 1000 ))
TIMEOUT=$(( BOUND / 1000 + 2 ))
note "one default open: ${BASE} ms; bound for an open past the hostile key files: ${BOUND} ms"

# craft NAME OPS MEM: a copy of the real key file with other Argon2id limits
craft()
{
	"$PY" - "$R/keys/$LEGIT" "$R/keys/$1" "$2" "$3" <<'EOF' || fail "cannot craft key file"
import json, sys
k = json.load(open(sys.argv[1]))
k["opslimit"], k["memlimit"] = int(sys.argv[3]), int(sys.argv[4])
open(sys.argv[2], "w").write(json.dumps(k, indent=2))
EOF
}
HUGE=0000000000000000000000000000000000000000000000000000000000000000
TINY=0000000000000000000000000000000000000000000000000000000000000001
craft "$HUGE" 100 $((4 << 30))
craft "$TINY" 3 1024

# --- a wrong password: every key file is tried, the hostile ones refused ---
printf 'not the password\n' > "$T/wrong"
COFFER_PASSWORD_FILE=$T/wrong open_ms "$T/cache-wrong"
[ "$RC" = 137 ] && fail "wrong password: still deriving after ${MS} ms (a hostile key file was run)"
check_eq 12 "$RC" "exit of a wrong password past hostile key files"
grep -q "wrong password" "$T/err" || soft_fail "wrong password not said: $(cat "$T/err")"
grep "$HUGE" "$T/err" | grep -qi "refused" || soft_fail "the 100 x 4 GiB key file is not named as refused: $(cat "$T/err")"
grep "$TINY" "$T/err" | grep -qi "refused" || soft_fail "the 1 KiB key file is not named as refused: $(cat "$T/err")"
[ "$MS" -le "$BOUND" ] || soft_fail "wrong password took ${MS} ms (bound ${BOUND} ms)"

# --- the right password, no hint yet: opens, in the bound -----------------
open_ms "$T/cache"
[ "$RC" = 137 ] && fail "right password: still deriving after ${MS} ms (a hostile key file was run)"
check_eq 0 "$RC" "open with the right password past hostile key files"
[ "$MS" -le "$BOUND" ] || soft_fail "right password took ${MS} ms (bound ${BOUND} ms)"
note "open past the hostile key files: ${MS} ms"

# the hint: the working key file's name, nothing secret
HINT=$(cat "$T"/cache/keys/* 2> /dev/null)
check_eq "$LEGIT" "$HINT" "the remembered key file"
grep -rqF "correct horse" "$T/cache" && soft_fail "the password is in the cache directory"

# --- an expensive but legal key file that sorts first is not even tried ----
# (4 passes of 1 GiB: the ceiling, 21x a default open's derivation)
craft 0000000000000000000000000000000000000000000000000000000000000002 4 $((1 << 30))
open_ms "$T/cache"
check_eq 0 "$RC" "open with the hint"
[ "$MS" -le "$BOUND" ] || soft_fail "open with the hint took ${MS} ms (bound ${BOUND} ms)"
note "open with the hint: ${MS} ms"
grep -q 0000000000000000000000000000000000000000000000000000000000000002 "$T/err" &&
	soft_fail "the expensive key file was tried although the hint named another"
rm -f "$R/keys/0000000000000000000000000000000000000000000000000000000000000002"

# a stale hint (the key file is gone) is ignored: the listing finds the key
echo 1111111111111111111111111111111111111111111111111111111111111111 > "$(ls "$T"/cache/keys/*)"
open_ms "$T/cache"
check_eq 0 "$RC" "open with a stale hint"
check_eq "$LEGIT" "$(cat "$T"/cache/keys/*)" "the hint after a stale one"

# --- init / key add cannot create what the reader refuses ------------------
expect_exit 1 "$COFFER" -r "$R" key add --new-password-file "$PWFILE" --kdf-passes 11
assert_contains "$T/err" "--kdf-passes" "key add above the ceiling"
expect_fail "$COFFER" -r "$T/repo2" init --kdf-passes 10 --kdf-memory 1048576
assert_contains "$T/err" "above the ceiling" "init above the cost ceiling"
[ -e "$T/repo2/config" ] && soft_fail "init above the ceiling made a repository"
expect_exit 0 "$COFFER" -r "$T/repo3" init --kdf-passes 1 --kdf-memory 8

e2e_done
