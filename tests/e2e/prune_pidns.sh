#!/bin/bash
# prune_pidns.sh - prune never deletes a running backup's data (issue 23).
#
# 1. A backup runs in its own PID namespace (unshare -pf --mount-proc: same
#    hostname, its pid means another process or none out here), frozen with
#    SIGSTOP once its first pack is stored.  prune in the parent namespace
#    must refuse (the lock is live: its pid cannot be checked from here) and
#    delete nothing; `unlock` keeps the lock and says why.  The resumed backup
#    saves, its snapshot restores bit-exact, check --read-data passes.  (The
#    old rule - same hostname and kill(pid, 0) = ESRCH - called that lock
#    stale and prune deleted the backup's packs.)
# 2. A backup frozen past the lock staleness margin (made 2 s for the pruning
#    process with COFFER_TEST_LOCK_STALE_SECONDS, test-only): prune runs, and
#    (a) with the default 1 hour safety margin keeps the backup's young packs
#    and says so; (b) with the margin 0 (COFFER_TEST_PRUNE_MARGIN_SECONDS,
#    test-only) deletes them, and the resumed backup fails loudly: non-zero,
#    naming a missing pack, no snapshot written.  The older snapshots still
#    restore bit-exact, and after a prune check --read-data passes.
. "$(dirname "$0")/lib.sh"
e2e_setup

[ "$(id -u)" = 0 ] || skip "needs root (unshare -p)"
unshare -pf --mount-proc true 2> /dev/null || skip "unshare -pf --mount-proc does not work here"

R=$T/repo
D=$T/data/small
G=$T/data/scratch
B=$T/data/big
mkdir -p "$D" "$G" "$B"
randfile "$D/a" 300000
echo hello > "$D/b"
randfile "$G/junk" $((12 << 20))
# 160 MiB in 5 files: the backup outlasts its first pack
for i in 1 2 3 4 5; do
	randfile "$B/part$i" $((32 << 20))
done
init_repo "$R"
cof -r "$R" backup "$D"
S1=$(latest_id "$R")
cof -r "$R" backup "$G"
SG=$(latest_id "$R")
cof -r "$R" forget "$SG"     # its packs now hold no used blob: prune's to delete

packs() { find "$R/data" -type f ! -name '.*' | sort; }
npacks() { packs | wc -l; }
more_packs_than() { [ "$(npacks)" -gt "$1" ]; }
locks() { find "$R/locks" -type f ! -name '.*' 2> /dev/null; }
nsnaps() { ls "$R/snapshots" | wc -l; }

# a pid free out here, so that the old rule would have found "no such process"
free_pid()
{
	local p
	for ((p = 400; p < 30000; p++)); do
		[ -e "/proc/$p" ] || { echo "$p"; return; }
	done
	echo 400
}

# --- 1. a backup in another PID namespace ------------------------------------
before=$(npacks)
WANT=$(free_pid)
# inside: burn pids until the next one is WANT, then run the backup (not
# exec'd: as pid 1 it would match init out here)
unshare -pf --mount-proc bash -c '
	while [ "$(sh -c "echo \$\$")" -lt $(($1 - 1)) ]; do :; done
	"$2" -r "$3" backup "$4" "$5"
	exit $?' inner "$WANT" "$COFFER" "$R" "$D" "$B" \
	> "$T/ns.out" 2> "$T/ns.err" &
NS=$!
E2E_PIDS+=("$NS")
wait_for more_packs_than "$before" || { cat "$T/ns.err" >&2; fail "the backup in the new PID namespace stored no pack within 20 s"; }
CPID=
for p in $(pgrep -x coffer); do
	tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null | grep -qF -- "$R" &&
		[ "$(readlink "/proc/$p/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] && CPID=$p
done
[ -n "$CPID" ] || fail "cannot find the backup's process"
E2E_PIDS+=("$CPID")
kill -STOP "$CPID"
NSPID=$(awk '/^NSpid:/ { print $NF }' "/proc/$CPID/status")
note "backup: pid $CPID here, pid $NSPID in its namespace ($([ -e "/proc/$NSPID" ] && echo "a live pid here too" || echo "no such process here"))"
[ -n "$(locks)" ] || fail "the running backup holds no lock"
packs > "$T/packs.before"
LOCKS=$(locks)

expect_exit 11 "$COFFER" -r "$R" prune
assert_contains "$T/err" "held by" "prune names the holder of the lock"
expect_exit 11 "$COFFER" -r "$R" forget --keep-last 1 --prune
packs > "$T/packs.after"
cmp -s "$T/packs.before" "$T/packs.after" ||
	soft_fail "prune deleted packs while the backup in another PID namespace ran: $(comm -23 "$T/packs.before" "$T/packs.after" | wc -l) gone"
assert_eq 1 "$(nsnaps)" "snapshots after the refused forget"
cof -r "$R" unlock
assert_contains "$T/err" "kept lock" "unlock says it keeps the live lock"
assert_contains "$T/err" "PID namespace" "unlock says why"
[ "$(locks)" = "$LOCKS" ] || soft_fail "unlock removed the lock of the running backup"

kill -CONT "$CPID"
wait "$NS"
rc=$?
[ "$rc" = 0 ] || { cat "$T/ns.err" >&2; fail "the backup in the PID namespace failed after the refused prune (exit $rc)"; }
assert_eq 2 "$(nsnaps)" "snapshots after the backup"
S2=$(latest_id "$R")
cof -r "$R" check --read-data
rm -rf "$T/r"
cof -r "$R" restore "$S2" --target "$T/r"
compare_trees "$B" "$T/r$B"
compare_trees "$D" "$T/r$D"

# --- 2. a backup frozen past the lock margin ---------------------------------
echo changed >> "$D/b"
for i in 1 2 3; do
	randfile "$B/new$i" $((32 << 20))
done
# start_frozen: a backup of D and B, stopped once it stored a new pack
start_frozen()
{
	before=$(npacks)
	packs > "$T/packs.start"
	"$COFFER" -r "$R" backup "$D" "$B" > "$T/bg.out" 2> "$T/bg.err" &
	BG=$!
	E2E_PIDS+=("$BG")
	wait_for more_packs_than "$before" || fail "the backup stored no new pack within 20 s"
	kill -STOP "$BG"
	packs > "$T/packs.frozen"
	comm -13 "$T/packs.start" "$T/packs.frozen" > "$T/packs.new"
	[ -s "$T/packs.new" ] || fail "no new pack of the frozen backup"
}
gone_of_backup() { local n=0 p; while read -r p; do [ -e "$p" ] || n=$((n + 1)); done < "$T/packs.new"; echo $n; }

start_frozen
sleep 3 # past the 2 s margin given to the pruning processes below
# (a) the default safety margin: prune runs and keeps the young packs
COFFER_TEST_LOCK_STALE_SECONDS=2 expect_exit 0 env -u COFFER_TEST_PRUNE_MARGIN_SECONDS \
	"$COFFER" -r "$R" prune
assert_contains "$T/out" "kept young" "prune reports the packs it kept by age"
young=$(awk '/^kept young:/ { print $3 }' "$T/out")
[ "${young:-0}" -ge "$(wc -l < "$T/packs.new")" ] || soft_fail "prune kept $young young packs, the backup had stored $(wc -l < "$T/packs.new")"
check_eq 0 "$(gone_of_backup)" "packs of the frozen backup deleted by a prune with the 1 h margin"
# (b) margin 0: now they go
COFFER_TEST_LOCK_STALE_SECONDS=2 COFFER_TEST_PRUNE_MARGIN_SECONDS=0 expect_exit 0 \
	"$COFFER" -r "$R" prune
gone=$(gone_of_backup)
note "prune with margin 0 deleted $gone of the frozen backup's $(wc -l < "$T/packs.new") packs"
[ "$gone" -ge 1 ] || fail "prune with margin 0 kept every pack of the frozen backup (the test needs one deleted)"
kill -CONT "$BG"
wait "$BG"
rc=$?
note "resumed backup: exit $rc: $(tail -n 1 "$T/bg.err")"
[ "$rc" != 0 ] || soft_fail "the backup whose packs a prune deleted reported success"
grep -q "pack [0-9a-f]\{16\}" "$T/bg.err" || soft_fail "the failed backup does not name a missing pack: $(cat "$T/bg.err")"
grep -qi "no snapshot was written" "$T/bg.err" || soft_fail "the failed backup does not say no snapshot was written"
assert_not_contains "$T/bg.out" "snapshot saved" "the failed backup's output"
check_eq 2 "$(nsnaps)" "snapshots after the failed backup"
rm -rf "$T/r"
cof -r "$R" restore "$S2" --target "$T/r"
for i in 1 2 3 4 5; do
	cmp -s "$B/part$i" "$T/r$B/part$i" || soft_fail "part$i of the second snapshot does not restore bit-exact"
done
rm -rf "$T/r"
cof -r "$R" restore "$S1" --target "$T/r"
[ "$(cat "$T/r$D/b")" = hello ] || soft_fail "the first snapshot's file changed"
cmp -s "$D/a" "$T/r$D/a" || soft_fail "the first snapshot's data differs"
# what the failed run left (an index naming deleted packs) goes with a prune
cof -r "$R" prune
cof -r "$R" check --read-data
# and a new run succeeds
cof -r "$R" backup "$D" "$B"
rm -rf "$T/r"
cof -r "$R" restore latest --target "$T/r"
compare_trees "$B" "$T/r$B"
e2e_done
