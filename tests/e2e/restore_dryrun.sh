#!/bin/bash
# restore_dryrun.sh - `restore --dry-run` changes nothing (not a byte, not a
# time, no directory created) and lists what a real restore would create,
# replace, delete and keep, with byte counts that match what the real
# restore then does.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S/d"
randfile "$S/keep-me" 100000
randfile "$S/change-me" 200000
randfile "$S/missing" 300000
echo small > "$S/d/small"
init_repo "$T/repo"
cof -r "$T/repo" backup "$S"

# into a target that does not exist: everything would be created, nothing is
cof -r "$T/repo" restore latest --target "$T/nowhere" --dry-run
[ -e "$T/nowhere" ] && soft_fail "--dry-run created the target"
assert_contains "$T/out" "create   $T/nowhere$S/missing (300000 bytes)" "listing of a new file"
assert_contains "$T/out" "create   $T/nowhere$S/d/" "listing of a new directory"

R=$T/restore
cof -r "$T/repo" restore latest --target "$R"
randfile "$R$S/change-me" 200000   # same size, other content
rm "$R$S/missing"
randfile "$R$S/extra" 4321
mkdir "$R$S/extra-dir" && randfile "$R$S/extra-dir/x" 1000
echo junk > "$R$S/.coffer-tmp-4242-1"

state()
{
	( cd "$R" && find . -printf '%p %i %T@ %C@ %s %m\n' | sort ) > "$1"
	( cd "$R" && find . -type f -exec sha256sum {} + | sort ) >> "$1"
}
state "$T/before"
cof -r "$T/repo" --json restore latest --target "$R" --delete --dry-run
cp "$T/out" "$T/dry.json"
cof -r "$T/repo" restore latest --target "$R" --delete --dry-run
cp "$T/out" "$T/dry.txt"
state "$T/after"
cmp -s "$T/before" "$T/after" || { diff "$T/before" "$T/after" >&2; soft_fail "--dry-run changed the target"; }

assert_contains "$T/dry.txt" "keep     $R$S/keep-me (100000 bytes)" "keep line"
assert_contains "$T/dry.txt" "replace  $R$S/change-me (200000 bytes)" "replace line"
assert_contains "$T/dry.txt" "create   $R$S/missing (300000 bytes)" "create line"
assert_contains "$T/dry.txt" "delete   $R$S/extra (4321 bytes)" "delete line (file)"
assert_contains "$T/dry.txt" "delete   $R$S/extra-dir/" "delete line (directory)"
check_eq 1 "$(json_field "$T/dry.json" 'j["files_created"]')" "would create"
check_eq 1 "$(json_field "$T/dry.json" 'j["files_replaced"]')" "would replace"
check_eq 500000 "$(json_field "$T/dry.json" 'j["bytes_restored"]')" "bytes that would be written"
check_eq 2 "$(json_field "$T/dry.json" 'j["files_skipped"]')" "would keep (keep-me, d/small)"
check_eq 3 "$(json_field "$T/dry.json" 'j["files_deleted"]')" "would delete (extra, extra-dir, extra-dir/x)"
check_eq 5321 "$(json_field "$T/dry.json" 'j["bytes_deleted"]')" "bytes that would be deleted"
check_eq true "$(json_field "$T/dry.json" 'str(j["dry_run"]).lower()')" "dry_run flag"

# the real restore does what the dry run said
cof -r "$T/repo" --json restore latest --target "$R" --delete
for k in files_created files_replaced bytes_restored files_skipped files_deleted bytes_deleted; do
	check_eq "$(json_field "$T/dry.json" "j['$k']")" "$(json_field "$T/out" "j['$k']")" "$k: dry run vs real"
done
compare_trees "$S" "$R$S"
e2e_done
