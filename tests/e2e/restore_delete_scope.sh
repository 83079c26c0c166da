#!/bin/bash
# restore_delete_scope.sh - `restore --delete` removes extras only beneath the
# snapshot's source paths, never in the directories above them (issue 24):
# `restore latest --target / --delete` of a sidecar's snapshot of
# /backup/app-data planned to delete the whole host (870,709 entries in the dry
# run).  Here the target stands for /: a file beside the source's ancestors
# (like /etc), a sibling volume (like /backup/other) and an extra file inside
# the volume; only the last may go, with and without --include of an
# ancestor, and with --path-map.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
V=$T/vol/app-data
mkdir -p "$V/sub"
echo data > "$V/sub/file"
cof -r "$R" backup -q "$V"

setup_target() {
	rm -rf "$T/tgt"
	mkdir -p "$T/tgt/etc" "$T/tgt$T/vol/other" "$T/tgt$V/sub"
	echo host > "$T/tgt/etc/passwd"
	echo sibling > "$T/tgt$T/vol/other/file"
	echo beside > "$T/tgt$T/beside-the-volume"
	echo extra > "$T/tgt$V/extra"
	echo extra > "$T/tgt$V/sub/extra"
}
survivors() {
	for f in "$T/tgt/etc/passwd" "$T/tgt$T/vol/other/file" "$T/tgt$T/beside-the-volume"; do
		[ -f "$f" ] || soft_fail "$1: $f (outside the snapshot's source $V) was deleted"
	done
	[ -e "$T/tgt$V/extra" ] && soft_fail "$1: the extra file inside the volume was kept"
	[ -e "$T/tgt$V/sub/extra" ] && soft_fail "$1: the extra file deeper inside the volume was kept"
	[ "$(cat "$T/tgt$V/sub/file" 2> /dev/null)" = data ] || soft_fail "$1: the volume's file was not restored"
}

# the dry run plans no deletion outside the volume
setup_target
expect_exit 0 "$COFFER" -r "$R" restore latest --target "$T/tgt" --delete --dry-run -v
cat "$T/out" "$T/err" | grep '^delete ' > "$T/planned" || true
grep -v "^delete *$T/tgt$V/" "$T/planned" | grep -q . &&
	soft_fail "the dry run plans deletions outside $V: $(grep -v "^delete *$T/tgt$V/" "$T/planned" | head -n 3)"
check_eq 2 "$(wc -l < "$T/planned")" "deletions planned by the dry run (the two extras inside the volume)"
survivors_dry() { [ -f "$T/tgt/etc/passwd" ] || soft_fail "the dry run deleted something"; }
survivors_dry

setup_target
cof -r "$R" restore latest --target "$T/tgt" --delete
survivors "restore --target ROOT --delete"

setup_target
cof -r "$R" restore latest --target "$T/tgt" --delete --include "$T/vol"
survivors "restore --delete --include (an ancestor of the source)"

# a path map onto the volume's own directory: extras beneath it go
setup_target
cof -r "$R" restore latest --path-map "$V=$T/tgt$V" --delete
survivors "restore --path-map --delete"
e2e_done
