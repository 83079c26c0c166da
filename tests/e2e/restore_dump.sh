#!/bin/bash
# restore_dump.sh - `coffer dump`: a tree as a tar archive that the system
# tar extracts back into an identical tree (modes, nanosecond mtimes,
# symlinks, hard links, sparse-free content, xattrs where supported); a
# sub-tree; one file's bytes without --archive; a zip that unzip reads.
. "$(dirname "$0")/lib.sh"
e2e_setup
command -v tar > /dev/null || skip "tar not installed"

S=$T/src
mkdir -p "$S/d/e" "$S/empty"
randfile "$S/big" $((5 << 20))
echo hello > "$S/d/e/hello"
: > "$S/zero"
ln -s d/e/hello "$S/link"
ln -s /nonexistent "$S/dangling"
echo linked > "$S/hl1" && ln "$S/hl1" "$S/d/hl2"
echo odd > "$S/name with spaces"
chmod 0600 "$S/zero"
chmod 0751 "$S/d"
mkfifo "$S/fifo"
setfattr -n user.note -v hi "$S/big" 2> /dev/null && XATTR=1 || XATTR=0
find "$S" -depth ! -type l -exec touch -m -d '2020-01-02 03:04:05.123456789' {} +
find "$S" -type l -exec touch -h -m -d '2019-01-02 03:04:05.5' {} +

init_repo "$T/repo"
cof -r "$T/repo" backup "$S"

# the whole snapshot
"$COFFER" -r "$T/repo" dump latest --archive tar > "$T/all.tar" 2> "$T/err" || { cat "$T/err" >&2; fail "dump --archive tar"; }
mkdir "$T/x"
tar --warning=no-unknown-keyword --xattrs --xattrs-include='user.*' --numeric-owner -xpf "$T/all.tar" -C "$T/x" || fail "tar -x"
compare_trees "$S" "$T/x$S"
assert_eq "$(stat -c %i "$T/x$S/hl1")" "$(stat -c %i "$T/x$S/d/hl2")" "hard link kept in the archive"
if [ "$XATTR" = 1 ]; then
	assert_eq hi "$(getfattr --only-values -n user.note "$T/x$S/big" 2> /dev/null)" "xattr through tar"
fi

# a sub-tree, piped straight into tar
mkdir "$T/x2"
set -o pipefail
"$COFFER" -r "$T/repo" dump latest "$S/d" --archive tar | tar -xpf - -C "$T/x2" ||
	fail "dump of a sub-tree piped into tar"
set +o pipefail
[ -f "$T/x2$S/d/e/hello" ] || soft_fail "sub-tree dump misses d/e/hello"
[ -e "$T/x2$S/big" ] && soft_fail "sub-tree dump holds more than the sub-tree"

# one file: its bytes
"$COFFER" -r "$T/repo" dump latest "$S/big" > "$T/big.out" || fail "dump of one file"
cmp "$S/big" "$T/big.out" || soft_fail "dumped file differs"
"$COFFER" -r "$T/repo" dump latest "$S/zero" > "$T/zero.out" || fail "dump of an empty file"
[ -s "$T/zero.out" ] && soft_fail "empty file dumped as non-empty"

# zip
"$COFFER" -r "$T/repo" dump latest "$S/d" --archive zip > "$T/d.zip" || fail "dump --archive zip"
if command -v unzip > /dev/null; then
	mkdir "$T/z" && (cd "$T/z" && unzip -q "$T/d.zip") || fail "unzip"
	cmp "$S/d/e/hello" "$T/z$S/d/e/hello" || soft_fail "file from the zip differs"
else
	"$PY" -c 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).testzip()' "$T/d.zip" || soft_fail "zip unreadable"
fi

# errors: a missing path, a bad format
expect_exit 1 "$COFFER" -r "$T/repo" dump latest "$S/nope"
assert_contains "$T/err" "$S/nope" "missing path named"
expect_exit 1 "$COFFER" -r "$T/repo" dump latest --archive rar
assert_contains "$T/err" "tar or zip" "bad format named"
e2e_done
