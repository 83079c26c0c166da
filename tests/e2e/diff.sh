#!/bin/bash
# diff.sh - `coffer diff A B` names exactly the paths added, removed, changed
# in content, changed in metadata, and changed in type; --json says the same.
. "$(dirname "$0")/lib.sh"
e2e_setup
S=$T/src
mkdir -p "$S/keep" "$S/gone" "$S/meta"
echo same > "$S/keep/same"
echo old > "$S/keep/edit"
echo bye > "$S/gone/f"
echo m > "$S/meta/f"
echo x > "$S/kind"
init_repo "$T/repo"
cof -r "$T/repo" backup "$S"
A=$(latest_id "$T/repo")
echo new >> "$S/keep/edit"
rm -r "$S/gone"
mkdir "$S/new" && echo hi > "$S/new/f"
chmod 600 "$S/meta/f"
rm "$S/kind" && mkdir "$S/kind"
cof -r "$T/repo" backup "$S"
B=$(latest_id "$T/repo")

expect_exit 0 "$COFFER" -r "$T/repo" diff "$A" "$B"
got=$(grep -E '^[-+MUT] ' "$T/out" | sort)
want=$(printf '%s\n' "M    $S/keep/edit" "-    $S/gone/" "-    $S/gone/f" "+    $S/new/" "+    $S/new/f" \
	"U    $S/meta/f" "T    $S/kind/" | sort)
assert_eq "$want" "$got" "diff lines"
grep -q "2 added, 2 removed, 2 changed, 1 with changed metadata" "$T/out" || fail "diff summary: $(tail -1 "$T/out")"

expect_exit 0 "$COFFER" -r "$T/repo" diff --json "$A" "$B"
n=$("$PY" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ch = [r for r in rows if r["message_type"] == "change"]
st = [r for r in rows if r["message_type"] == "statistics"][0]
assert st["added"] == 2 and st["removed"] == 2, st
print(len(ch))' "$T/out") || fail "diff --json does not parse"
assert_eq 7 "$n" "diff --json change lines"

# the same snapshot twice: no changes
expect_exit 0 "$COFFER" -r "$T/repo" diff "$A" "$A"
[ -z "$(grep -E '^[-+MUT] ' "$T/out")" ] || fail "a snapshot differs from itself"
expect_exit 1 "$COFFER" -r "$T/repo" diff "$A"
e2e_done
