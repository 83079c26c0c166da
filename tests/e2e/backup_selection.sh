#!/bin/bash
# backup_selection.sh - what a backup takes, as restic users write it (issue
# 22 item 6): --exclude-file, --exclude-if-present NAME[:HEADER],
# --exclude-caches (CACHEDIR.TAG with its signature, not a look-alike),
# --exclude-larger-than SIZE (a file of exactly SIZE is kept), --files-from
# (paths beside the command line's; a missing or empty list is refused).
# The directory cache must not carry a selection over: a marker added to an
# unchanged tree, a file grown past the limit, or an option given for the
# first time on a tree the cache calls unchanged all take effect in the very
# next backup.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
S=$T/src
init_repo "$R"
mkdir -p "$S/app/cache" "$S/app/fake-cache" "$S/app/skipme" "$S/app/keep" "$S/media" "$S/other"
printf 'Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n' > "$S/app/cache/CACHEDIR.TAG"
echo junk > "$S/app/cache/blob"
printf 'Signature: not the one\n' > "$S/app/fake-cache/CACHEDIR.TAG"
echo kept > "$S/app/fake-cache/data"
touch "$S/app/skipme/.nobackup"
echo gone > "$S/app/skipme/data"
echo kept > "$S/app/keep/data"
echo tmp > "$S/app/keep/scratch.tmp"
echo log > "$S/app/keep/run.log"
randfile "$S/media/big.bin" $((1024 * 1024 + 1))
randfile "$S/media/exact.bin" $((1024 * 1024))
echo small > "$S/media/small.txt"
echo other > "$S/other/file"
printf '# patterns for coffer\n\n*.tmp\n\n*.log\r\n' > "$T/excludes"

# listed PATH...: the paths of the latest snapshot, one per line, under $S
listed() { "$COFFER" -r "$R" ls latest | sed -n "s|^$S/||p" | sort; }
has() { listed | grep -qx "$1" || fail "$2: $1 is not in the snapshot"; }
lacks() { ! listed | grep -qx "$1" || fail "$2: $1 is in the snapshot"; }

SEL=(--exclude-caches --exclude-if-present .nobackup --exclude-larger-than 1M --exclude-file "$T/excludes")
cof -r "$R" backup "$S/app" "$S/media" "${SEL[@]}"
what="first backup"
lacks app/cache/blob "$what"
lacks app/cache "$what"
has app/fake-cache/data "$what (a CACHEDIR.TAG without the signature)"
lacks app/skipme "$what"
has app/keep/data "$what"
lacks app/keep/scratch.tmp "$what (--exclude-file)"
lacks app/keep/run.log "$what (--exclude-file, CRLF line)"
lacks media/big.bin "$what (1 MiB + 1 byte)"
has media/exact.bin "$what (exactly 1 MiB)"
has media/small.txt "$what"
lacks other/file "$what (not asked for)"

# --- the directory cache: changes of selection take effect at once -------
touch "$S/app/keep/.nobackup"
randfile "$S/media/small.txt" $((2 * 1024 * 1024))
cof -r "$R" backup "$S/app" "$S/media" "${SEL[@]}"
what="after a marker was added and a file grew"
lacks app/keep/data "$what"
lacks media/small.txt "$what"
has media/exact.bin "$what"
rm "$S/app/keep/.nobackup"
# the same tree without the options, then with one more, nothing changed
# in between: the cache says "unchanged" for every directory
cof -r "$R" backup "$S/app" "$S/media"
has media/big.bin "without --exclude-larger-than"
has app/cache/blob "without --exclude-caches"
cof -r "$R" backup "$S/app" "$S/media"
cof -r "$R" backup "$S/app" "$S/media" --exclude-larger-than 1500K --exclude-if-present CACHEDIR.TAG
what="options given for the first time on an unchanged tree"
lacks media/small.txt "$what (2 MiB)"
has media/big.bin "$what (1 MiB + 1 byte)"
lacks app/cache "$what"
lacks app/fake-cache "$what (NAME alone: any CACHEDIR.TAG)"
# and restoring gives what the listing says
cof -r "$R" restore latest --target "$T/r"
[ -f "$T/r$S/media/exact.bin" ] && cmp -s "$S/media/exact.bin" "$T/r$S/media/exact.bin" ||
	fail "exact.bin was not restored intact"
[ ! -e "$T/r$S/media/small.txt" ] || fail "small.txt (2 MiB) was restored"

# --- --files-from --------------------------------------------------------
printf '# what to back up\n%s\n\n%s\n' "$S/other" "$S/media/exact.bin" > "$T/list"
cof -r "$R" backup --files-from "$T/list" "$S/app/keep"
what="--files-from"
has other/file "$what"
has media/exact.bin "$what"
has app/keep/data "$what (the command line's path)"
lacks media/big.bin "$what"

n_before=$("$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect_exit 1 "$COFFER" -r "$R" backup --files-from "$T/nonexistent"
assert_contains "$T/err" "nonexistent" "a missing --files-from file is named"
assert_one_line_err "missing --files-from"
: > "$T/empty"
expect_exit 1 "$COFFER" -r "$R" backup --files-from "$T/empty"
assert_contains "$T/err" "no path" "an empty --files-from list"
echo "$S/not-there" > "$T/list2"
expect_exit 1 "$COFFER" -r "$R" backup --files-from "$T/list2"
assert_contains "$T/err" "$S/not-there" "a listed path that does not exist is named"
expect_exit 1 "$COFFER" -r "$R" backup "$S/app" --exclude-larger-than 12X
assert_contains "$T/err" "--exclude-larger-than" "a bad size"
expect_exit 1 "$COFFER" -r "$R" backup "$S/app" --exclude-if-present a/b
assert_contains "$T/err" "--exclude-if-present" "a marker that is a path"
expect_exit 1 "$COFFER" -r "$R" snapshots --exclude-caches
assert_contains "$T/err" "snapshots" "an option snapshots does not take"
n_after=$("$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
assert_eq "$n_before" "$n_after" "snapshots after the refused commands"
e2e_done
