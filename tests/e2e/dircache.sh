#!/bin/bash
# dircache.sh - the local directory cache (engine/dircache.h): a no-change
# backup takes every directory from it without loading a parent tree; every
# kind of change below a cached directory still reaches the snapshot (each
# snapshot restores equal to the source); the file is sealed (no names in
# it, 0600), a damaged one is ignored with a warning, one written for another
# snapshot is not used, --no-cache and COFFER_CACHE_DIR=off write none.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/data/src
for a in alpha beta gamma; do
	for b in one two; do
		mkdir -p "$S/$a/$b/leaf"
		for i in 1 2 3; do
			randfile "$S/$a/$b/f$i.bin" $((i * 3000))
			echo "$a $b $i" > "$S/$a/$b/leaf/t$i.txt"
		done
	done
done
mkdir -p "$S/empty1" "$S/empty2" "$S/gamma/two/leaf/deep/deeper"
echo bottom > "$S/gamma/two/leaf/deep/deeper/bottom.txt"
ln -s ../alpha/one/f1.bin "$S/beta/link"
ndirs() { find "$S" -type d | wc -l; }

init_repo "$T/repo"
R=(-r "$T/repo")

# backup_check NAME [ARGS]: back up (-v --json), then restore the snapshot and
# compare it with the source
n=0
backup_check()
{
	local name=$1
	shift
	expect_exit 0 "$COFFER" "${R[@]}" -v --json backup "$@" "$S"
	cp "$T/out" "$T/$name.json"
	cp "$T/err" "$T/$name.err"
	n=$((n + 1))
	rm -rf "$T/restore$n"
	cof "${R[@]}" restore latest --target "$T/restore$n"
	compare_trees "$S" "$T/restore$n$S"
	rm -rf "$T/restore$n"
}
hits() { sed -n 's/^directory cache: \([0-9]*\) directories unchanged.*/\1/p' "$T/$1.err"; }
summary() { tail -n 1 "$T/$1.json" > "$T/sum.json"; json_field "$T/sum.json" "j['summary']['$2']"; }

backup_check first
CF=$(ls "$T"/cache/*/dirs-* 2> /dev/null)
[ "$(echo "$CF" | wc -w)" = 1 ] || fail "one cache file expected under $T/cache, found: $CF"
assert_eq 600 "$(stat -c %a "$CF")" "cache file mode"
for w in alpha gamma leaf deeper empty1; do
	grep -qa "$w" "$CF" && soft_fail "the cache file shows the name '$w' in the clear"
done
assert_eq 0 "$(hits first)" "first backup: directories from the cache"

# no change: every directory below the source root comes from the cache,
# nothing new is stored
backup_check nochange
assert_eq "$(ndirs)" "$(hits nochange)" "no-change backup: directories from the cache"
# (the trees of $S's ancestors, /tmp and $T among them, may change: $T is
# where this test writes)
ANCESTORS=$(echo "$S" | tr -cd / | wc -c)
assert_le "$(summary nochange tree_blobs)" "$ANCESTORS" "no-change backup: new tree blobs"
assert_eq "$(find "$S" -type f | wc -l)" "$(summary nochange files_unmodified)" "no-change: unmodified files"

# each change below cached directories must show in the snapshot: content
# with size and mtime kept (ctime changes), mode, a new file, a removed
# file, a renamed directory, a file turned into a directory, a symlink
# retargeted, an xattr (where the file system has them), a new empty dir
f=$S/gamma/two/leaf/deep/deeper/bottom.txt
m=$(stat -c %Y "$f")
echo BOTTOM > "$f"
touch -d "@$m" "$f"
backup_check content
[ "$(hits content)" -lt "$(ndirs)" ] || soft_fail "a changed directory was taken from the cache"
"$COFFER" "${R[@]}" dump latest "${f#/}" > "$T/dumped" 2> /dev/null || fail "dump $f"
assert_eq BOTTOM "$(cat "$T/dumped")" "changed content (same size and mtime) in the snapshot"

chmod 0604 "$S/alpha/two/leaf/t2.txt"
backup_check mode
echo new > "$S/beta/one/leaf/new.txt"
backup_check newfile
rm "$S/alpha/one/f3.bin"
backup_check removed
mv "$S/beta/two" "$S/beta/two-renamed"
backup_check renamed
rm "$S/gamma/one/f2.bin"
mkdir "$S/gamma/one/f2.bin"
backup_check file_to_dir
ln -sfn ../gamma/one "$S/beta/link"
backup_check symlink
if setfattr -n user.cachetest -v 1 "$S/alpha/one/leaf/t1.txt" 2> /dev/null; then
	backup_check xattr
	cof "${R[@]}" restore latest --target "$T/x"
	assert_eq 1 "$(getfattr --only-values -n user.cachetest "$T/x$S/alpha/one/leaf/t1.txt" 2> /dev/null)" \
		"xattr set below a cached directory"
	rm -rf "$T/x"
else
	note "no user xattrs here (or no setfattr): that change is not tried"
fi
mkdir "$S/alpha/one/leaf/newdir"
backup_check newdir
backup_check settled
assert_eq "$(ndirs)" "$(hits settled)" "after the changes: every directory from the cache again"

# a damaged cache file is ignored with a warning, and the backup is right
flip_byte "$CF" 100 # always a change (an 'X' written over an 'X' was none)
echo changed-while-damaged > "$S/alpha/one/leaf/t3.txt"
backup_check damaged
assert_contains "$T/damaged.err" "directory cache" "warning about the damaged cache"
assert_eq 0 "$(hits damaged)" "damaged cache: directories from it"
backup_check repaired
assert_eq "$(ndirs)" "$(hits repaired)" "the cache is written again after a damaged one"

# a cache written for another snapshot is not used: keep this one, back up
# twice, put the old file back (it names the snapshot before the parent)
cp "$CF" "$T/old-cache"
echo one-more > "$S/beta/one/leaf/t1.txt"
backup_check step1
cp "$T/old-cache" "$CF"
echo two-more > "$S/beta/one/leaf/t2.txt"
backup_check stale
assert_eq 0 "$(hits stale)" "a cache of an older snapshot: directories from it"

# --no-cache and COFFER_CACHE_DIR=off: no cache used or written
rm -rf "$T/cache"
# (the restores in backup_check may remember their key file in $T/cache/keys:
# only directory cache files count)
dirs_cached() { ls "$T"/cache/*/dirs-* > /dev/null 2>&1; }
backup_check nocache --no-cache
dirs_cached && soft_fail "--no-cache wrote a directory cache in $T/cache"
COFFER_CACHE_DIR=off backup_check off
dirs_cached && soft_fail "COFFER_CACHE_DIR=off wrote a directory cache in $T/cache"

# an unwritable cache directory is a warning, not a failure
mkdir -p "$T/ro" && chmod 0500 "$T/ro"
if [ "$(id -u)" != 0 ]; then
	COFFER_CACHE_DIR=$T/ro/cache backup_check rocache
	assert_contains "$T/rocache.err" "not saved" "warning for an unwritable cache directory"
fi
cof "${R[@]}" check
e2e_done
