#!/bin/bash
# restore_enospc.sh - a restore into a file system that fills up (an 8 MiB
# tmpfs) fails with a clear error naming the file(s) it could not write, exit
# 3, leaves no temporary file and no truncated file under a real name, and
# restores what fits.
. "$(dirname "$0")/lib.sh"
e2e_setup
[ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"

S=$T/src
mkdir -p "$S"
echo small > "$S/a-small"
randfile "$S/b-big" $((12 << 20))
echo also > "$S/c-small"
init_repo "$T/repo"
cof -r "$T/repo" backup "$S"

M=$T/small
mkdir "$M"
mount -t tmpfs -o size=8m tmpfs "$M" 2> /dev/null || skip "cannot mount a tmpfs here"
trap 'umount "$M" 2>/dev/null; e2e_cleanup' EXIT

expect_exit 3 "$COFFER" -r "$T/repo" restore latest --target "$M"
assert_contains "$T/err" "$M$S/b-big" "the file that did not fit is named"
assert_contains "$T/err" "No space left on device" "the reason"
[ -e "$M$S/b-big" ] && soft_fail "a truncated b-big is under its real name"
[ -z "$(find "$M" -name '.coffer-tmp-*')" ] || soft_fail "temporary files left on the full file system"
# a small file may be written while b-big's temporary file still fills the
# disk (files are written in parallel): then it must be named as not restored
# and must not exist half-written
restored=0
for f in a-small c-small; do
	if cmp -s "$S/$f" "$M$S/$f"; then
		restored=$((restored + 1))
	else
		assert_contains "$T/err" "$M$S/$f" "$f, not restored, is named"
		[ -e "$M$S/$f" ] && soft_fail "a truncated $f is under its real name"
	fi
done
e2e_done
