#!/bin/bash
# roundtrip.sh - a tree holding every kind of entry comes back identical:
# content and metadata (type, mode, owner, mtime ns, symlink targets,
# hardlink groups, xattrs, sparse holes, fifos, device nodes, odd names);
# `restore --include` of one sub-directory restores only that.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S"
cd "$S" || fail "cd"

# regular files of several sizes
: > empty
printf x > one-byte
randfile random-3M $((3 << 20))
randfile big-20M $((20 << 20))
seq 1 200000 > compressible.txt

# nested and empty directories
mkdir -p deep/a/b/c/d empty-dir
echo "deep file" > deep/a/b/c/d/leaf
randfile deep/a/b/blob $((300 << 10))

# symlinks: relative, absolute, dangling, to a directory
ln -s one-byte link-relative
ln -s /etc/hostname link-absolute
ln -s does/not/exist link-dangling
ln -s deep/a link-to-dir

# a hardlink group of 3 (across directories) and a pair
echo "linked content" > hl-1
ln hl-1 hl-2
ln hl-1 deep/a/hl-3
randfile pair-a 5000
ln pair-a deep/pair-b

# a sparse 50 MiB file with a few written blocks
truncate -s 50M sparse
for off in 0 7 19 33 49; do
	printf 'block at %d MiB' "$off" | dd of=sparse bs=1M seek="$off" conv=notrunc status=none
done
[ "$(allocated_kib sparse)" -lt 10240 ] || skip "this file system does not keep holes"

# a fifo
mkfifo fifo

# odd names: spaces, newline, non-UTF-8 bytes, unicode, leading dash
echo space > "name with spaces"
echo newline > $'new\nline'
echo bytes > $'\xff\xfe-latin'
echo unicode > "ünïcødé-日本語-🎉"
echo dash > ./-leading-dash
mkdir $'dir\nwith\xffodd'
echo inside > $'dir\nwith\xffodd/f'

# odd modes
echo secret > mode-0600 && chmod 0600 mode-0600
echo exec > mode-0755 && chmod 0755 mode-0755
mkdir sticky && chmod 1777 sticky
mkdir private-dir && echo x > private-dir/f && chmod 0700 private-dir
if [ "$(id -u)" = 0 ]; then
	# (only root can read it back for the backup)
	echo none > mode-0000 && chmod 0000 mode-0000
	echo setuid > setuid && chmod 4755 setuid
	echo setgid > setgid && chmod 2750 setgid
	mkdir setgid-dir && chmod 2775 setgid-dir
	echo owned > owned-by-nobody && chown 65534:65534 owned-by-nobody
	echo owned > owned-by-1234 && chown 1234:4321 owned-by-1234
	ln -s somewhere symlink-owned && chown -h 1234:1234 symlink-owned
	mknod chardev c 1 3
	mknod blockdev b 7 200
fi

# extended attributes
XATTRS=0
if setfattr -n user.coffer -v hello random-3M 2>/dev/null; then
	XATTRS=1
	setfattr -n user.empty random-3M
	setfattr -n user.binary -v 0x00ff00fe deep/a/b/c/d/leaf
	setfattr -n user.on-dir -v "dir attr" deep
	setfattr -n user.big -v "$(head -c 3000 /dev/zero | tr '\0' 'x')" hl-1
else
	note "user xattrs not supported here: not tested"
fi

# fixed mtimes in the past on everything (directories last, deepest first)
find . -depth ! -type l -exec touch -m -d '2019-03-04 05:06:07.123456789' {} +
find . -type l -exec touch -h -m -d '2018-01-02 03:04:05.5' {} +
touch -m -d '2020-02-29 23:59:59.987654321' random-3M
cd "$T" || fail "cd"

init_repo "$T/repo"
cof -r "$T/repo" backup "$S"
cof -r "$T/repo" restore latest --target "$T/restore"
compare_trees "$S" "$T/restore$S"
# modes come back whatever the restore's umask (a world-readable file is
# created with its mode, which the umask may cut: set_meta_fd then sets it)
(umask 077 && cof -r "$T/repo" restore latest --target "$T/umask077" --include "$S/mode-0755")
assert_eq 755 "$(stat -c %a "$T/umask077$S/mode-0755")" "mode of mode-0755 restored under umask 077"
(umask 000 && cof -r "$T/repo" restore latest --target "$T/umask000" --include "$S/mode-0600")
assert_eq 600 "$(stat -c %a "$T/umask000$S/mode-0600")" "mode of mode-0600 restored under umask 000"

# what a user would look at directly
[ "$(allocated_kib "$T/restore$S/sparse")" -lt 10240 ] ||
	soft_fail "restored sparse file allocates $(allocated_kib "$T/restore$S/sparse") KiB of 51200"
cmp "$S/big-20M" "$T/restore$S/big-20M" || fail "big file differs"
[ "$(readlink "$T/restore$S/link-dangling")" = does/not/exist ] || fail "dangling symlink target"
[ -p "$T/restore$S/fifo" ] || fail "fifo not restored as a fifo"
assert_eq 3 "$(stat -c %h "$T/restore$S/hl-1")" "links of hl-1"
assert_eq "$(stat -c %i "$T/restore$S/hl-1")" "$(stat -c %i "$T/restore$S/deep/a/hl-3")" "hl-1/hl-3 inode"
if [ "$XATTRS" = 1 ]; then
	getfattr --absolute-names -n user.coffer --only-values "$T/restore$S/random-3M" > "$T/xa" ||
		fail "getfattr on restored file"
	assert_eq hello "$(cat "$T/xa")" "user.coffer on the restored file"
fi
if [ "$(id -u)" = 0 ]; then
	assert_eq 4755 "$(stat -c %a "$T/restore$S/setuid")" "setuid mode"
	assert_eq "1234:4321" "$(stat -c %u:%g "$T/restore$S/owned-by-1234")" "ownership"
	assert_eq "7,200" "$(stat -c '%Hr,%Lr' "$T/restore$S/blockdev")" "block device numbers"
	[ -c "$T/restore$S/chardev" ] || fail "chardev not restored"
fi

# --include of one sub-directory restores that and nothing else
cof -r "$T/repo" restore latest --target "$T/partial" --include "$S/deep/a"
compare_trees "$S/deep/a" "$T/partial$S/deep/a"
extra=$(cd "$T/partial$S" && find . -mindepth 1 ! -path './deep' ! -path './deep/a' ! -path './deep/a/*')
[ -z "$extra" ] || fail "--include restored more than asked for: $extra"

# --exclude: by name pattern and by path; excluded entries are not in the snapshot
cof -r "$T/repo" backup --exclude '*.txt' --exclude "$S/deep/a/b" --tag excluded "$S"
cof -r "$T/repo" ls latest --tag excluded "$S"
cp "$T/out" "$T/ls-excluded"
grep -q 'compressible.txt' "$T/ls-excluded" && soft_fail "--exclude '*.txt' did not exclude compressible.txt"
grep -qF "$S/deep/a/b" "$T/ls-excluded" && soft_fail "--exclude $S/deep/a/b did not exclude it"
grep -qxF "$S/deep/a/hl-3" "$T/ls-excluded" || soft_fail "--exclude removed more than asked (deep/a/hl-3 missing)"
grep -qxF "$S/random-3M" "$T/ls-excluded" || soft_fail "--exclude removed more than asked (random-3M missing)"
e2e_done
