#!/bin/bash
# faults.sh - backend faults (issue 9): the fault: wrapper (store/fault.c) fails
# the Nth and later calls of one kind (put, get, list, remove, stat), with
# permanent or transient errors, during backup, restore and forget --prune.
# Every run must either succeed or fail cleanly (exit 0/1/3/11, a one-line
# "coffer: ..." message, no crash), and afterwards the real repository checks
# clean with --read-data and the first snapshot still restores bit-exact.
. "$(dirname "$0")/lib.sh"
e2e_setup
R=$T/repo
S=$T/src
mkdir -p "$S/a" "$S/b"
randfile "$S/a/big" 3000000
for i in 1 2 3 4 5 6; do echo "file $i" > "$S/b/f$i"; done
init_repo "$R"
cof -r "$R" backup --tag first "$S"
FIRST=$(latest_id "$R")
cp -a "$S" "$T/first"

runs=0 injected=0 ok=0 failed=0
clean_run() { # clean_run SPEC CMD... : runs CMD under COFFER_FAULTS=SPEC and judges it
	local spec=$1; shift
	COFFER_FAULTS=$spec "$@" > "$T/f.out" 2> "$T/f.err"
	local rc=$?
	runs=$((runs + 1))
	grep -q "injected fault" "$T/f.err" && injected=$((injected + 1))
	case $rc in
	0 | 3) ok=$((ok + 1)) ;;
	1 | 11)
		failed=$((failed + 1))
		grep -q '^coffer: ' "$T/f.err" || soft_fail "[$spec] $* failed without a 'coffer:' message: $(tail -2 "$T/f.err")"
		;;
	*) soft_fail "[$spec] $* exited $rc (crash?): $(tail -3 "$T/f.err")" ;;
	esac
}

n=0
for kind in put get list stat remove; do
	for at in 1 2 3 5 8 13; do
		n=$((n + 1))
		mode=permanent
		[ $((n % 2)) = 0 ] && mode=transient
		echo "change $n" > "$S/b/new$n"
		randfile "$S/a/r$n" 200000
		clean_run "$kind=$at:$mode" "$COFFER" -r "fault:$R" backup "$S"
		rm -rf "$T/out-f"
		clean_run "$kind=$at:$mode" "$COFFER" -r "fault:$R" restore latest --target "$T/out-f"
	done
	clean_run "$kind=4:permanent" "$COFFER" -r "fault:$R" forget --keep-last 3 --keep-tag first --prune
done
note "$runs runs under injected faults ($injected hit a fault): $ok succeeded, $failed failed cleanly"
[ "$injected" -gt 20 ] || soft_fail "only $injected runs met an injected fault: the harness is not biting"

# nothing earlier lost: the repository is whole and the first snapshot intact
cof -r "$R" unlock
cof -r "$R" check --read-data
rm -rf "$T/back"
cof -r "$R" restore "$FIRST" --target "$T/back"
compare_trees "$T/first" "$T/back$S"
# and a run without faults completes
cof -r "$R" backup "$S"
rm -rf "$T/back2"
cof -r "$R" restore latest --target "$T/back2"
compare_trees "$S" "$T/back2$S"
e2e_done
