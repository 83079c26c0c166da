#!/bin/bash
# restore_kill.sh - kill -9 in the middle of a restore over an existing
# target: no file is ever half-written under its real name (each is either
# the old one or the complete new one), and a re-run completes the restore,
# equal to the snapshot, with no temporary file left.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S"
for i in $(seq 1 40); do randfile "$S/f$i" $((3 << 20)); done
init_repo "$T/repo"
cof -r "$T/repo" backup "$S"

R=$T/restore
# an old version of every file is in place: a torn write would show as a mix
mkdir -p "$R$S"
for i in $(seq 1 40); do randfile "$R$S/f$i" $((3 << 20)); done

has_tmp()
{
	[ -n "$(find "$R" -name '.coffer-tmp-*' -print -quit)" ]
}
killed=0 ntmp=0
# a kill lands mid-file when a temporary file is still there afterwards; the
# file seen by has_tmp may be renamed into place just before the signal
# arrives, so an attempt that caught none is tried again
for attempt in 1 2 3 4 5 6 7 8; do
	"$COFFER" -r "$T/repo" -q restore latest --target "$R" --overwrite always --threads 1 \
		> "$T/kill.out" 2>&1 &
	pid=$!
	E2E_PIDS+=("$pid")
	# kill once a temporary file exists: a file is being written right now
	if wait_for has_tmp; then
		kill -KILL "$pid" 2>/dev/null && killed=1
	fi
	wait "$pid" 2>/dev/null
	ntmp=$(find "$R" -name '.coffer-tmp-*' | wc -l)
	[ "$killed" = 1 ] && [ "$ntmp" -ge 1 ] && break
done
[ "$killed" = 1 ] || skip "the restore finished before it could be killed"
note "killed with $ntmp temporary file(s) in place (attempt $attempt)"
[ "$ntmp" -ge 1 ] || soft_fail "no temporary file after any of $attempt kills (was it mid-way?)"

# every file under its real name is whole: the old one or the snapshot's
new=0
for i in $(seq 1 40); do
	f=$R$S/f$i
	[ "$(stat -c %s "$f")" = $((3 << 20)) ] || soft_fail "$f has a torn size after the kill"
	cmp -s "$f" "$S/f$i" && new=$((new + 1))
done
note "$new of 40 files were complete and renamed into place before the kill"

cof -r "$T/repo" restore latest --target "$R"
compare_trees "$S" "$R$S"
[ -z "$(find "$R" -name '.coffer-tmp-*')" ] || soft_fail "temporary files left after the re-run"
e2e_done
