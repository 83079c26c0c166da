#!/bin/bash
# locks.sh - backups take shared locks: two backups at once both succeed and
# both snapshots restore; a lock held by a live process survives `unlock`; a
# lock left by a killed process (dead pid, this host) does not stop the next
# backup, and `unlock` removes it.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
A=$T/data/a
B=$T/data/b
mkdir -p "$A" "$B"
randfile "$A/a.bin" $((48 << 20))
randfile "$B/b.bin" $((48 << 20))
echo a > "$A/small"
echo b > "$B/small"
init_repo "$R"

# real lock files (not the temporary names of an atomic write in progress)
locks() { find "$R/locks" -type f ! -name '.*' 2> /dev/null | sort; }
has_lock() { [ -n "$(locks)" ]; }

# start_stopped NAME ARGS...: a backup in the background, frozen (SIGSTOP) as
# soon as its lock exists; pid in $BGPID
start_stopped()
{
	local name=$1
	shift
	"$COFFER" -r "$R" backup "$@" > "$T/$name.out" 2> "$T/$name.err" &
	BGPID=$!
	E2E_PIDS+=("$BGPID")
	wait_for has_lock || fail "backup $name took no lock within 20 s"
	kill -STOP "$BGPID" || fail "backup $name ended before it could be stopped"
}

# --- a live lock (process stopped) -------------------------------------------
start_stopped first "$A"
HELD=$(locks)
assert_eq 1 "$(echo "$HELD" | wc -l)" "locks held by one running backup"
# another backup runs to completion while the first holds its shared lock
cof -r "$R" backup "$B"
# unlock leaves the lock of a live process alone
cof -r "$R" unlock
[ -e "$HELD" ] || fail "unlock removed the lock of a running backup"
kill -CONT "$BGPID"
wait "$BGPID"
rc=$?
[ "$rc" = 0 ] || { cat "$T/first.err" >&2; fail "the first backup failed after a concurrent one (exit $rc)"; }
[ -z "$(locks)" ] || fail "locks left after both backups finished: $(locks)"
assert_eq 2 "$(ls "$R/snapshots" | wc -l)" "snapshots after two overlapping backups"

# --- two backups started together -------------------------------------------
echo more >> "$A/small"
echo more >> "$B/small"
"$COFFER" -r "$R" backup "$A" > "$T/ca.out" 2> "$T/ca.err" &
pa=$!
"$COFFER" -r "$R" backup "$B" "$A" > "$T/cb.out" 2> "$T/cb.err" &
pb=$!
E2E_PIDS+=("$pa" "$pb")
wait "$pa"; ra=$?
wait "$pb"; rb=$?
[ "$ra" = 0 ] || { cat "$T/ca.err" >&2; fail "concurrent backup A failed (exit $ra)"; }
[ "$rb" = 0 ] || { cat "$T/cb.err" >&2; fail "concurrent backup B failed (exit $rb)"; }
assert_eq 4 "$(ls "$R/snapshots" | wc -l)" "snapshots after two concurrent backups"
# concurrent backups may both store the same (tree) blob: a duplicate, not damage
if ! "$COFFER" -r "$R" check --read-data > "$T/out" 2> "$T/err"; then
	sed 's/^/    /' "$T/out" "$T/err" >&2
	soft_fail "check reports problems after two concurrent backups"
fi
cof -r "$R" restore latest --path "$A" --target "$T/ra"
compare_trees "$A" "$T/ra$A"
cof -r "$R" restore latest --path "$A" --path "$B" --target "$T/rb"
compare_trees "$A" "$T/rb$A"
compare_trees "$B" "$T/rb$B"

# --- a lock left by a killed backup ------------------------------------------
# (--force: read all 48 MiB again, so the backup lasts long enough to be caught)
start_stopped killed --force "$A"
STALE=$(locks)
kill -KILL "$BGPID"
wait "$BGPID" 2> /dev/null
[ -e "$STALE" ] || fail "the killed backup's lock vanished by itself"
echo again >> "$B/small"
cof -r "$R" backup "$B"
"$COFFER" -r "$R" check > "$T/out" 2> "$T/err" || soft_fail "check after a killed backup: $(cat "$T/err")"
if [ -e "$STALE" ]; then
	cof -r "$R" unlock
	assert_contains "$T/out" "removed 1" "unlock reports the stale lock"
else
	note "the next backup cleared the stale lock itself"
fi
[ -z "$(locks)" ] || fail "unlock left the stale lock: $(locks)"
cof -r "$R" restore latest --path "$B" --target "$T/rc"
compare_trees "$B" "$T/rc$B"
e2e_done
