#!/bin/bash
# fiu.sh - resource faults (issue "Reliability"): ENOSPC (28) and EIO (5)
# injected with libfiu's POSIX preload (fiu-run -x, Debian fiu-utils) into
# the system calls of the local backend during a backup (writev, fsync,
# rename, open) and of the restore writer (pwrite, ftruncate, open, fsync).
# Each fault is switched on either from the start (it then hits the first
# such call: taking the lock, reading the key) or, through fiu-ctrl, once the
# run holds its lock / has created its target (it then hits pack uploads and
# file writes in the middle of the work).
#
# Every run must succeed or fail cleanly: exit 1 or 3, or 11 when the fault
# hit the lock's refresh (the backup then writes no snapshot: a lock it
# cannot renew may have been broken by a prune) - never a crash - the
# error on a "coffer: " line naming the errno ("no space left on device",
# "input/output error"), at most one other line.  Afterwards `check
# --read-data` passes and every snapshot taken before restores bit-exact.
#
# What libfiu sees: calls coffer's own code makes through the PLT (open,
# writev, pwrite, fsync, rename, ftruncate in store/local.c, restore/write.c,
# common/util.c).  Calls made inside libraries (glibc's stdio, libsodium,
# libzstd, libcurl) are not intercepted, so stdout/stderr keep working.
. "$(dirname "$0")/lib.sh"
e2e_setup
command -v fiu-run > /dev/null && command -v fiu-ctrl > /dev/null || skip "fiu-run/fiu-ctrl (fiu-utils) not installed"
[ -e /usr/lib/fiu/fiu_posix_preload.so ] || skip "libfiu's POSIX preload library is missing"
case "${LD_PRELOAD:-}:$(ldd "$COFFER" 2>/dev/null)" in
*libasan*) skip "fiu's preload cannot be combined with AddressSanitizer" ;;
esac

R=$T/repo
S=$T/src
mkdir -p "$S/d"
randfile "$S/base" 500000
echo "small" > "$S/d/small"
init_repo "$R"
SNAPS=()
cof -r "$R" backup -q "$S"
snap_record "$R" "$S"

runs=0 failed=0 ok=0
# judge NAME RC: a clean success or failure (see the header)
judge()
{
	local name=$1 rc=$2 kind=${1%%,*} n
	runs=$((runs + 1))
	case $rc in
	0) ok=$((ok + 1)) ;;
	1 | 3 | 11)
		failed=$((failed + 1))
		n=$(wc -l < "$T/f.err")
		if [ "$kind" = restore ]; then
			# restore's contract: one "error: PATH: ..." line per path it
			# could not write, then a "coffer: N entries could not be restored"
			if ! grep -qiE '^(error|coffer): .*(no space left on device|input/output error)' "$T/f.err" ||
				! tail -1 "$T/f.err" | grep -q '^coffer: '; then
				sed 's/^/    /' "$T/f.err" >&2
				soft_fail "$name: exit $rc without lines naming the error"
			fi
		elif ! grep -qiE '^coffer: .*(no space left on device|input/output error)' "$T/f.err"; then
			sed 's/^/    /' "$T/f.err" >&2
			soft_fail "$name: exit $rc without a 'coffer:' line naming the error"
		elif [ "$n" -gt 2 ]; then
			sed 's/^/    /' "$T/f.err" >&2
			soft_fail "$name: $n lines on stderr for one fault"
		fi
		;;
	*) soft_fail "$name: exit $rc (crash?): $(tail -3 "$T/f.err")" ;;
	esac
}

# faulty WHEN POINT ERRNO READY CMD...: run CMD under fiu with POINT failing
# with ERRNO, from the start (WHEN=early) or once the shell test READY holds
# (WHEN=late); the exit code is left in $RC
faulty()
{
	local when=$1 point=$2 err=$3 ready=$4 pid i
	shift 4
	if [ "$when" = early ]; then
		fiu-run -x -c "enable name=$point,failinfo=$err" "$@" > "$T/f.out" 2> "$T/f.err"
		RC=$?
		return
	fi
	fiu-run -x -f "$T/fiu" "$@" > "$T/f.out" 2> "$T/f.err" &
	pid=$!
	for ((i = 0; i < 2000; i++)); do
		eval "$ready" && break
		kill -0 "$pid" 2> /dev/null || break
		sleep 0.005
	done
	fiu-ctrl -f "$T/fiu" -c "enable name=$point,failinfo=$err" "$pid" 2> /dev/null
	wait "$pid"
	RC=$?
}

verify() # WHAT: check passes and every snapshot so far restores bit-exact
{
	local id
	"$COFFER" -r "$R" unlock > /dev/null 2>&1
	if ! "$COFFER" -r "$R" check --read-data > "$T/c.out" 2> "$T/c.err"; then
		sed 's/^/    /' "$T/c.out" "$T/c.err" >&2
		soft_fail "$1: check --read-data fails"
	fi
	for id in "${SNAPS[@]}"; do
		rm -rf "$T/r"
		if ! "$COFFER" -r "$R" restore "$id" --target "$T/r" > /dev/null 2> "$T/r.err"; then
			soft_fail "$1: snapshot $id does not restore: $(cat "$T/r.err")"
			continue
		fi
		compare_trees "$T/copy.$id" "$T/r$S" > /dev/null
	done
}

# --- backup into the local repository
n=0
for point in posix/io/rw/writev posix/io/sync/fsync posix/io/dir/rename posix/io/oc/open; do
	for err in 28 5; do
		for when in early late; do
			n=$((n + 1))
			randfile "$S/new.$n" 6000000
			echo "change $n" > "$S/d/small"
			faulty "$when" "$point" "$err" 'has_files "$R/locks"' \
				"$COFFER" -r "$R" backup -q "$S"
			judge "backup, $point=$err ($when)" "$RC"
			[ "$RC" = 0 ] && snap_record "$R" "$S"
			"$COFFER" -r "$R" unlock > /dev/null 2>&1
			"$COFFER" -r "$R" check > "$T/c.out" 2> "$T/c.err" ||
				soft_fail "backup, $point=$err ($when): check fails: $(cat "$T/c.err")"
			# the same backup without the fault completes
			cof -r "$R" backup -q "$S"
			snap_record "$R" "$S"
		done
	done
	verify "after backups with $point failing"
done

# --- restore: the repository is only read, the target is written
last=${SNAPS[${#SNAPS[@]} - 1]}
for point in posix/io/rw/pwrite posix/io/rw/ftruncate posix/io/oc/open posix/io/sync/fsync; do
	for err in 28 5; do
		for when in early late; do
			rm -rf "$T/out"
			faulty "$when" "$point" "$err" 'has_files "$T/out"' \
				"$COFFER" -r "$R" restore "$last" --target "$T/out"
			judge "restore, $point=$err ($when)" "$RC"
			if [ "$RC" = 0 ]; then
				compare_trees "$T/copy.$last" "$T/out$S" > /dev/null
			else
				# a file the restore did not name as failed is bit-exact
				while read -r f; do
					t=$T/out$S/${f#./}
					[ -f "$t" ] || continue
					grep -qF -- "$t" "$T/f.err" && continue
					cmp -s "$T/copy.$last/$f" "$t" ||
						soft_fail "restore, $point=$err ($when): $f differs but was not named"
				done < <(cd "$T/copy.$last" && find . -type f)
			fi
		done
	done
done
verify "after the faulty restores"
note "figures: $runs runs with ENOSPC/EIO injected: $failed failed cleanly, $ok succeeded;" \
	"${#SNAPS[@]} snapshots restore bit-exact, 0 lost"
[ "$failed" -ge $((runs / 2)) ] || soft_fail "only $failed of $runs runs met a fault: the harness is not biting"
e2e_done
