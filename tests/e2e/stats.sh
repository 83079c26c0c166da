#!/bin/bash
# stats.sh - `stats` sizes and counts, and `check --read-data-subset`.
#
# stats: two snapshots of a tree holding a 4 MiB file and a copy of it, the
# second after adding 1 MiB: snapshots 2, files counted per snapshot (5),
# restore size = the bytes of those files, raw size = the distinct data
# (about 5 MiB: the copy and the second snapshot dedup), dedup ratio
# restore/raw > 1.7, repository size = what data/ holds, text form readable.
# check subsets: n/m for every n reads each pack exactly once in all; 100%
# reads every pack; a bad spec is refused.  A flipped byte in the pack of one
# file: `check --read-data` names the pack, both snapshots and the file's
# path, and not the other files.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
D=$T/data
mkdir -p "$D"
randfile "$D/big" $((4 << 20))
cp "$D/big" "$D/big.copy"
echo small > "$D/small"
init_repo "$R"
cof -r "$R" backup -q "$D"
randfile "$D/more" $((1 << 20))
cof -r "$R" backup -q "$D"

cof -r "$R" --json stats
cp "$T/out" "$T/stats.json"
check_eq 2 "$(json_field "$T/stats.json" 'j["snapshots_count"]')" "snapshots_count"
check_eq 7 "$(json_field "$T/stats.json" 'j["total_file_count"]')" "files in all snapshots (3 + 4)"
check_eq $(( 2 * (8 << 20) + (1 << 20) + 12 )) "$(json_field "$T/stats.json" 'j["total_restore_size"]')" "restore size"
raw=$(json_field "$T/stats.json" 'j["total_uncompressed_size"]')
assert_le $((5 << 20)) "$raw" "raw size holds the distinct data"
assert_le "$raw" $(((5 << 20) + 65536)) "raw size counts the copy and the unchanged file once"
check_eq True "$(json_field "$T/stats.json" 'j["dedup_ratio"] > 3.1')" "dedup ratio (17 MiB of files / 5 MiB raw)"
packs_bytes=$(find "$R/data" -type f ! -name '.*' -printf '%s\n' | awk '{s += $1} END {print s}')
check_eq "$packs_bytes" "$(json_field "$T/stats.json" 'j["total_size"]')" "repository size = bytes in data/"
check_eq "$(find "$R/data" -type f ! -name '.*' | wc -l)" "$(json_field "$T/stats.json" 'j["pack_count"]')" "pack count"
check_eq True "$(json_field "$T/stats.json" 'j["data_blob_count"] >= 3 and j["tree_blob_count"] >= 2')" "blob counts"
cof -r "$R" stats
assert_contains "$T/out" "deduplication ratio" "text stats"

# --- check --read-data-subset --------------------------------------------------
npacks=$(find "$R/data" -type f ! -name '.*' | wc -l)
sum=0
for n in 1 2 3; do
	cof -r "$R" check --read-data-subset "$n/3"
	got=$(sed -n 's/.*data of \([0-9]*\) packs read.*/\1/p' "$T/out")
	sum=$((sum + got))
done
check_eq "$npacks" "$sum" "packs read over subsets 1/3, 2/3, 3/3"
cof -r "$R" check --read-data-subset 100%
assert_contains "$T/out" "data of $npacks packs read" "100% reads every pack"
cof -r "$R" check --read-data-subset 1%
assert_contains "$T/out" "data of 1 packs read" "1% of a few packs reads one"
expect_exit 1 "$COFFER" -r "$R" check --read-data-subset 4/3
expect_exit 1 "$COFFER" -r "$R" check --read-data-subset banana

# --- a damaged pack names what depends on it ----------------------------------
# the pack holding "more" (only in the second snapshot): the newest data pack
pack=$(find "$R/data" -type f ! -name '.*' -size +900k -newer "$R/config" -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$pack" ] || fail "no data pack found"
size=$(stat -c %s "$pack")
chmod u+w "$pack" 2>/dev/null
flip_byte "$pack" $((size / 2))
expect_exit 1 "$COFFER" -r "$R" check --read-data
assert_contains "$T/err" "$(basename "$pack" | cut -c1-16)" "the damaged pack is named"
assert_contains "$T/err" "needs damaged pack" "dependents are listed"
assert_contains "$T/err" "file $D/more" "the file that needs it is named"
assert_not_contains "$T/err" "file $D/small" "files that do not need it are not named"
e2e_done
