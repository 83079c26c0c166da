#!/bin/bash
# damaged_parent.sh - a backup whose parent snapshot's directory trees cannot
# be read (their pack has a flipped byte) still succeeds: each directory whose
# old tree fails to load is read in full, whether the read-ahead threads
# (engine/backup.c, "read ahead") or the walker itself loaded it, and the new
# snapshot restores equal to the source.  The source holds only empty files,
# so the repository's only packs are tree packs: the first backup's pack holds
# every directory's tree, the second's only the new top directories', so
# damaging the first pack leaves the parent's root readable.
. "$(dirname "$0")/lib.sh"
e2e_setup
S=$T/src
for i in $(seq -w 1 30); do
	mkdir -p "$S/d$i/sub"
	: > "$S/d$i/empty"
	: > "$S/d$i/sub/empty"
done
R=$T/repo
init_repo "$R"
cof -r "$R" backup -q "$S"
first=$(find "$R/data" -type f)
[ "$(echo "$first" | wc -l)" = 1 ] || fail "expected one pack after the first backup: $first"
: > "$S/top"
cof -r "$R" backup -q "$S"
[ "$(find "$R/data" -type f | wc -l)" = 2 ] || fail "expected a second pack"
# a flipped byte every 32: every tree of the pack fails authentication
"$PY" - "$first" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
for i in range(0, len(b), 32):
    b[i] ^= 0xff
open(p, 'wb').write(b)
PYEOF
expect_fail "$COFFER" -r "$R" check
# new mtimes: the new trees differ from the damaged ones, so they are stored anew
find "$S" -type f -exec touch -d '2021-06-07 08:09:10' {} +
cof -r "$R" --json backup "$S"
tail -n 1 "$T/out" > "$T/third.json"
assert_eq 61 "$(json_field "$T/third.json" "j['summary']['total_files_processed']")" \
	"third backup: files processed"
assert_eq 1 "$(json_field "$T/third.json" "j['summary']['files_changed']")" \
	"third backup: the file of the readable root tree is known"
assert_eq 60 "$(json_field "$T/third.json" "j['summary']['files_new']")" \
	"third backup: files under the unreadable trees are read as new"
cof -r "$R" restore latest --target "$T/r"
diff -r "$S" "$T/r$S" > /dev/null || fail "restore of the new snapshot differs from the source"
assert_eq "$(stat -c %Y "$S/d30/sub/empty")" "$(stat -c %Y "$T/r$S/d30/sub/empty")" "restored mtime"
e2e_done
