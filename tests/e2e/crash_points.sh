#!/bin/bash
# crash_points.sh - crash consistency (issue "Reliability"): coffer is
# SIGKILLed at exact, repeatable points of a backup, a prune and a restore.
# The points come from the fault: backend (store/fault.c): COFFER_FAULTS=
# "put=3:kill" dies before the 3rd put is done, "put=3:killafter" right after
# it was done, for every kind of backend call (put, get, list, remove).
#
# After each kill: the stale lock is removed the documented way (`coffer
# unlock`), `check --read-data` passes, every snapshot taken before restores
# bit-exact, and a re-run of the same command without faults completes.
. "$(dirname "$0")/lib.sh"
e2e_setup
R=$T/repo
S=$T/src
mkdir -p "$S/dir"
randfile "$S/base" 300000
echo "small" > "$S/dir/small"
init_repo "$R" --chunk-size 16,32,64

# the snapshots that must survive: id -> copy of the source it was taken of
SNAPS=()
cof -r "$R" backup -q "$S"
snap_record "$R" "$S"

SANITIZED=
ldd "$COFFER" 2> /dev/null | grep -q libasan && SANITIZED=1
points=0 bitten=0 survived=0 restored=0 reruns=0

# survive WHAT: the repository after a kill is whole and loses nothing
survive()
{
	local what=$1 id bad=0
	if ! "$COFFER" -r "$R" unlock > "$T/u.out" 2> "$T/u.err"; then
		soft_fail "$what: unlock fails: $(cat "$T/u.err")"
		bad=1
	fi
	if ! "$COFFER" -r "$R" check --read-data > "$T/c.out" 2> "$T/c.err"; then
		sed 's/^/    /' "$T/c.out" "$T/c.err" >&2
		soft_fail "$what: check --read-data fails"
		bad=1
	fi
	rm -rf "$T/r"
	local ids=("${SNAPS[@]}")
	# a sanitizer build runs ~10x slower: it restores the oldest and newest
	# snapshots after each kill (the normal build restores every one)
	[ -n "$SANITIZED" ] && [ ${#ids[@]} -gt 2 ] && ids=("${SNAPS[0]}" "${SNAPS[${#SNAPS[@]} - 1]}")
	for id in "${ids[@]}"; do
		if ! "$COFFER" -r "$R" restore "$id" --target "$T/r/$id" > "$T/r.out" 2> "$T/r.err"; then
			sed 's/^/    /' "$T/r.err" >&2
			soft_fail "$what: snapshot $id does not restore"
			bad=1
		fi
	done
	# one comparison for all of them: content, mode, mtime of every entry
	if "$PY" - "$T" "$S" "${ids[@]}" > "$T/cmp.out" <<'PYEOF'; then
import hashlib, os, sys
t, src, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
def walk(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            h = hashlib.sha256(open(p, "rb").read()).hexdigest() if os.path.isfile(p) else ""
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_mtime_ns, h)
    return out
bad = 0
for i in ids:
    want = walk(os.path.join(t, "copy." + i))
    got = walk(os.path.join(t, "r", i) + src)
    if want != got:
        bad += 1
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        print("snapshot %s differs: %s" % (i, diff[:5]))
print("%d snapshots compared, %d differ" % (len(ids), bad))
sys.exit(1 if bad else 0)
PYEOF
		restored=$((restored + ${#ids[@]}))
	else
		sed 's/^/    /' "$T/cmp.out" >&2
		soft_fail "$what: a snapshot restores with different content"
		bad=1
	fi
	return $bad
}

# killed SPEC CMD...: run CMD with the kill point SPEC; it must die by SIGKILL
# (exit 137) or, if the point lies past its last call of that kind, succeed.
killed()
{
	local spec=$1 rc
	shift
	points=$((points + 1))
	COFFER_FAULTS=$spec "$@" > "$T/k.out" 2> "$T/k.err"
	rc=$?
	case $rc in
	137) bitten=$((bitten + 1)) ;;
	0) note "[$spec] $2 $3 finished before the kill point" ;;
	*) soft_fail "[$spec] $*: exited $rc instead of dying: $(tail -2 "$T/k.err")" ;;
	esac
	return $rc
}

# --- backup: lock, packs, index, snapshot, lock removal; reads and lists
n=0
for spec in put=1:kill put=2:kill put=2:killafter put=3:kill put=3:killafter put=4:kill \
	put=4:killafter put=5:kill put=5:killafter remove=1:kill get=6:kill list=2:kill; do
	n=$((n + 1))
	randfile "$S/new.$n" 150000
	echo "change $n" > "$S/dir/small"
	killed "$spec" "$COFFER" -r "fault:$R" backup -q "$S"
	rc=$?
	[ "$rc" = 0 ] && snap_record "$R" "$S"
	survive "backup killed at $spec" && survived=$((survived + 1))
	if [ "$rc" != 0 ]; then
		# the re-run completes (and may reuse what the killed run stored)
		expect_exit 0 "$COFFER" -r "$R" backup -q "$S"
		reruns=$((reruns + 1))
		snap_record "$R" "$S"
	fi
done

# --- prune: a scratch snapshot is forgotten so each prune has data to delete
# and packs to repack (the scratch file shares packs with kept data)
n=0
for spec in put=1:killafter put=2:kill put=2:killafter remove=1:kill remove=2:killafter \
	remove=3:kill remove=5:killafter get=3:kill get=8:kill list=3:kill; do
	n=$((n + 1))
	randfile "$S/scratch" 120000
	randfile "$S/keep.$n" 40000
	cof -r "$R" backup -q "$S"
	scratch=$(latest_id "$R")
	rm -f "$S/scratch"
	cof -r "$R" backup -q "$S"
	snap_record "$R" "$S"
	cof -r "$R" forget -q "$scratch"
	killed "$spec" "$COFFER" -r "fault:$R" prune -q --max-unused 0%
	rc=$?
	survive "prune killed at $spec" && survived=$((survived + 1))
	if [ "$rc" != 0 ]; then
		expect_exit 0 "$COFFER" -r "$R" prune -q --max-unused 0%
		reruns=$((reruns + 1))
		survive "prune re-run after $spec"
	fi
done

# --- restore: killed while reading; the repository is untouched and a new
# restore of the same snapshot completes bit-exact
last=${SNAPS[${#SNAPS[@]} - 1]}
for spec in list=1:kill get=1:kill get=5:kill get=20:killafter; do
	rm -rf "$T/kr"
	killed "$spec" "$COFFER" -r "fault:$R" restore "$last" --target "$T/kr"
	rc=$?
	survive "restore killed at $spec" && survived=$((survived + 1))
	if [ "$rc" != 0 ]; then
		rm -rf "$T/kr"
		expect_exit 0 "$COFFER" -r "$R" restore "$last" --target "$T/kr"
		compare_trees "$T/copy.$last" "$T/kr$S" > /dev/null
		reruns=$((reruns + 1))
	fi
done

note "figures: kill points survived $survived/$points ($bitten killed by SIGKILL)," \
	"$reruns re-runs completed, $restored snapshot restores bit-exact, ${#SNAPS[@]} snapshots, 0 lost"
[ "$bitten" -ge 20 ] || soft_fail "only $bitten of $points kill points were reached"
[ "$survived" = "$points" ] || soft_fail "survived $survived of $points kill points"
e2e_done
