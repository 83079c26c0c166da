#!/bin/bash
# restore_overwrite.sh - restoring over a live target that was changed since:
# modified (same size and other size), missing and extra files and
# directories, changed modes, a directory where a file was and the reverse,
# a stale temporary file, and symlinks planted to lead the restore outside
# the target.  With --delete the target ends up equal to the snapshot and
# nothing outside it changes; a second restore writes nothing (inode numbers,
# mtimes and ctimes unchanged); --overwrite never/always do what they say.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S/sub/deeper" "$S/keepdir" "$S/was-dir"
randfile "$S/big" $((6 << 20))
randfile "$S/same-size" $((2 << 20))
echo hello > "$S/small"
echo inside > "$S/sub/f"
echo deeper > "$S/sub/deeper/g"
echo plain > "$S/plain"
echo "a file" > "$S/file-here"
echo x > "$S/was-dir/x"
echo linked > "$S/hl-a" && ln "$S/hl-a" "$S/sub/hl-b"
ln -s small "$S/link"
chmod 0640 "$S/small"
truncate -s 20M "$S/sparse" && echo tail | dd of="$S/sparse" bs=1M seek=19 conv=notrunc status=none
find "$S" -depth -exec touch -h -d '2021-05-06 07:08:09.5' {} +

init_repo "$T/repo"
cof -r "$T/repo" backup "$S"
R=$T/restore
cof -r "$T/repo" restore latest --target "$R"
compare_trees "$S" "$R$S"

# --- change the target the way a live volume changes ---
mkdir -p "$T/outside"
echo "must stay" > "$T/outside/victim"
( cd "$T/outside" && find . -exec stat -c '%n %s %Y %i' {} + | sort ) > "$T/outside.before"
# same size, other content (only content hashing sees it; keep size and mtime)
flip_byte "$R$S/same-size" 12345 # always a change ('Z' over a random byte was none in 1 run of 256)
touch -d '2021-05-06 07:08:09.5' "$R$S/same-size"
echo "grown and changed" >> "$R$S/big"
rm "$R$S/small"
chmod 0777 "$R$S/plain"
echo extra > "$R$S/extra-file"
mkdir -p "$R$S/extra-dir/nested" && echo e > "$R$S/extra-dir/nested/e"
ln -s "$T/outside" "$R$S/extra-link-to-outside"
rm -r "$R$S/was-dir" && echo "now a file" > "$R$S/was-dir"
rm "$R$S/file-here" && mkdir -p "$R$S/file-here/d" && echo y > "$R$S/file-here/d/y"
echo junk > "$R$S/sub/.coffer-tmp-99999-7"
# symlinks planted to lead writes outside the target:
rm -r "$R$S/sub" && ln -s "$T/outside" "$R$S/sub"           # a directory component
rm "$R$S/plain" && ln -s "$T/outside/victim" "$R$S/plain"     # a file
rm -r "$R$S/keepdir" && ln -s "$T/outside" "$R$S/keepdir"     # an (empty) directory

cof -r "$T/repo" restore latest --target "$R" --delete
compare_trees "$S" "$R$S"
( cd "$T/outside" && find . -exec stat -c '%n %s %Y %i' {} + | sort ) > "$T/outside.after"
cmp -s "$T/outside.before" "$T/outside.after" || { diff "$T/outside.before" "$T/outside.after" >&2; soft_fail "the restore changed files outside the target"; }
assert_eq "must stay" "$(cat "$T/outside/victim")" "file behind a planted symlink"
[ -e "$R$S/sub/.coffer-tmp-99999-7" ] && soft_fail "stale temporary file left"
[ -z "$(find "$R" -name '.coffer-tmp-*')" ] || soft_fail "temporary files left: $(find "$R" -name '.coffer-tmp-*')"

# --- a second restore writes nothing ---
snap_state()
{
	( cd "$R" && find . -printf '%p %i %T@ %C@ %s\n' | sort )
}
snap_state > "$T/state1"
sleep 0.05
cof -r "$T/repo" --json restore latest --target "$R" --delete
check_eq 0 "$(json_field "$T/out" 'j["files_restored"]')" "files written by the second restore"
check_eq 0 "$(json_field "$T/out" 'j["files_deleted"]')" "entries deleted by the second restore"
check_eq 0 "$(json_field "$T/out" 'j["errors"]')" "errors in the second restore"
snap_state > "$T/state2"
cmp -s "$T/state1" "$T/state2" || { diff "$T/state1" "$T/state2" | head -20 >&2; soft_fail "the second restore changed inodes, mtimes or ctimes"; }
# and no write(2)/pwrite(2) to a file under the target at all
if command -v strace > /dev/null && strace -f -qq -e trace=none true 2> /dev/null; then
	# (LeakSanitizer cannot run under ptrace: off for a -DCOFFER_SANITIZE=ON build)
	ASAN_OPTIONS=detect_leaks=0 \
	strace -f -qq -e trace=openat,pwrite64,write,rename,renameat,renameat2,unlink,unlinkat -o "$T/strace" \
		"$COFFER" -r "$T/repo" -q restore latest --target "$R" --delete || fail "restore under strace"
	if grep -E 'pwrite64|renameat|unlinkat|O_CREAT|O_WRONLY' "$T/strace" | grep -v -e "$T/repo" -e '/locks/' > "$T/writes"; then
		sed 's/^/    /' "$T/writes" | head >&2
		soft_fail "the second restore wrote to the target"
	fi
fi

# --- the first path component is a symlink to a look-alike tree elsewhere ---
mv "$R/tmp" "$T/decoy"
ln -s "$T/decoy" "$R/tmp"
echo "decoy change" > "$T/decoy${S#/tmp}/small"
( cd "$T/decoy" && find . -printf '%p %i %T@ %C@ %s\n' | sort ) > "$T/decoy.before"
cof -r "$T/repo" restore latest --target "$R" --delete
[ -L "$R/tmp" ] && soft_fail "$R/tmp is still a symlink"
compare_trees "$S" "$R$S"
( cd "$T/decoy" && find . -printf '%p %i %T@ %C@ %s\n' | sort ) > "$T/decoy.after"
cmp -s "$T/decoy.before" "$T/decoy.after" || soft_fail "the restore wrote through the symlinked top directory"
assert_eq "decoy change" "$(cat "$T/decoy${S#/tmp}/small")" "file in the decoy tree"

# --- overwrite modes ---
echo "local change" > "$R$S/small"
cof -r "$T/repo" restore latest --target "$R" --overwrite never
assert_eq "local change" "$(cat "$R$S/small")" "--overwrite never kept the local file"
ino=$(stat -c %i "$R$S/big")
cof -r "$T/repo" --json restore latest --target "$R" --overwrite always
[ "$(stat -c %i "$R$S/big")" != "$ino" ] || soft_fail "--overwrite always did not rewrite an unchanged file"
assert_eq hello "$(cat "$R$S/small")" "--overwrite always restored the changed file"
compare_trees "$S" "$R$S"

# --- without --delete, extra files stay ---
echo mine > "$R$S/my-notes"
cof -r "$T/repo" restore latest --target "$R"
[ -f "$R$S/my-notes" ] || soft_fail "a restore without --delete removed an extra file"
# --exclude: neither restored nor deleted
echo changed > "$R$S/small"
cof -r "$T/repo" restore latest --target "$R" --delete --exclude small --exclude my-notes
assert_eq changed "$(cat "$R$S/small")" "--exclude small: not restored"
[ -f "$R$S/my-notes" ] || soft_fail "--exclude my-notes: deleted anyway"
e2e_done
