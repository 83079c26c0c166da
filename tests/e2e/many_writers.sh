#!/bin/bash
# many_writers.sh - three backups of different directories into one
# repository at the same time (shared locks): all succeed, each snapshot
# restores bit-exact, check --read-data passes.  Every directory holds the
# same 6 MiB file: the index holds its blobs once (raw size counts it once);
# writers that ran at the same time may each have packed a copy, and prune
# (exclusive lock, after they finish) removes those duplicates so data/
# shrinks to about the distinct data.  A fourth backup of the shared file
# afterwards adds no data.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
randfile "$T/shared" $((6 << 20))
for w in 1 2 3; do
	mkdir -p "$T/d$w"
	randfile "$T/d$w/own" $((4 << 20))
	cp "$T/shared" "$T/d$w/shared"
done

pids=()
for w in 1 2 3; do
	"$COFFER" -r "$R" backup --json "$T/d$w" > "$T/b$w.json" 2> "$T/b$w.err" &
	pids+=($!)
	E2E_PIDS+=($!)
done
for w in 1 2 3; do
	wait "${pids[$((w - 1))]}" || { cat "$T/b$w.err" >&2; fail "concurrent backup $w failed"; }
done
assert_eq 3 "$(ls "$R/snapshots" | wc -l)" "snapshots after three concurrent backups"
[ -z "$(find "$R/locks" -type f ! -name '.*')" ] || fail "locks left behind"
expect_exit 0 "$COFFER" -r "$R" check --read-data

cof -r "$R" --json stats
raw=$(json_field "$T/out" 'j["total_uncompressed_size"]')
size=$(json_field "$T/out" 'j["total_size"]')
distinct=$(( (6 << 20) + 3 * (4 << 20) ))
assert_le "$distinct" "$raw" "raw size"
assert_le "$raw" $((distinct + 65536)) "raw size counts the shared file once"
note "after concurrent backups: repository $size bytes for $raw raw"

cof -r "$R" prune
size2=$(find "$R/data" -type f ! -name '.*' -printf '%s\n' | awk '{s += $1} END {print s}')
note "after prune: repository $size2 bytes"
assert_le "$size2" $((distinct + 131072)) "after prune the shared file is stored once"
expect_exit 0 "$COFFER" -r "$R" check --read-data

for w in 1 2 3; do
	rm -rf "$T/r"
	cof -r "$R" restore latest --path "$T/d$w" --target "$T/r"
	compare_trees "$T/d$w" "$T/r$T/d$w"
done

mkdir -p "$T/d4"
cp "$T/shared" "$T/d4/again"
cof -r "$R" --json backup "$T/d4"
check_eq 0 "$(json_field "$T/out" 'j.get("data_added", j.get("summary", {}).get("data_added", -1))')" \
	"data added by a later backup of the shared file"
e2e_done
