#!/bin/bash
# prune.sh - forget then prune frees space, and every kept snapshot restores
# bit-exact.  Three snapshots of a changing tree (each run adds files and
# deletes the previous run's scratch file, so packs end up partly used):
# `prune --dry-run` says what it would free and changes nothing; `forget
# --keep-last 2 --prune` frees the first snapshot's data (du of data/
# shrinks by at least its unique bytes), repacks partly used packs
# (--max-unused 0%), leaves one index file, `check --read-data` passes and
# both kept snapshots restore identical to copies of the source taken at
# backup time.  A second prune finds nothing.  Prune takes the exclusive
# lock: it is refused (exit 11, naming the holder) while a backup runs.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
D=$T/src
mkdir -p "$D"
init_repo "$R" --chunk-size 64,128,512

kib() { du -sk "$1" | cut -f1; }
files() { (cd "$R" && find data index snapshots -type f ! -name '.*' | sort); }

# run 1: keep.1 + scratch.1; run 2: keep.2 + scratch.2 (scratch.1 gone); run 3 likewise
for i in 1 2 3; do
	randfile "$D/keep.$i" $((3 << 20))
	rm -f "$D"/scratch.*
	randfile "$D/scratch.$i" $((4 << 20))
	cof -r "$R" backup -q "$D" --time "2024-01-0$i 12:00:00"
	rm -rf "$T/copy.$i"
	cp -a "$D" "$T/copy.$i"
done
before=$(kib "$R/data")

# dry run: says what it will free, changes nothing
list0=$(files)
cof -r "$R" prune --dry-run
assert_contains "$T/out" "will free" "prune --dry-run reports what it would free"
assert_eq "$list0" "$(files)" "files after prune --dry-run"

cof -r "$R" forget --keep-last 2 --prune --max-unused 0%
cp "$T/out" "$T/prune.out"
assert_contains "$T/prune.out" "1 snapshots removed" "forget removed one snapshot"
assert_contains "$T/prune.out" "to repack" "prune reports repacking"
after=$(kib "$R/data")
note "data/: $before KiB before, $after KiB after"
# scratch.1 (4 MiB) was only in the first snapshot
assert_le $((after + 4000)) "$before" "data/ shrinks by the forgotten snapshot's unique data"
assert_eq 1 "$(ls "$R/index" | wc -l)" "index files after prune"
expect_exit 0 "$COFFER" -r "$R" check --read-data
"$COFFER" -r "$R" --json snapshots > "$T/s.json"
for i in 2 3; do
	id=$(json_field "$T/s.json" "[s['id'] for s in j if s['time'].startswith('2024-01-0$i')][0]")
	rm -rf "$T/r.$i"
	cof -r "$R" restore "$id" --target "$T/r.$i"
	compare_trees "$T/copy.$i" "$T/r.$i$D"
done

# nothing left to do
cof -r "$R" --json prune
check_eq 0 "$(json_field "$T/out" 'j["bytes_freed"] + j["packs_repack"] + j["packs_delete"]')" "second prune frees nothing"
check_eq 0 "$(json_field "$T/out" 'j["blobs_unused"]')" "no unused blobs after prune"

# prune needs the exclusive lock: refused while a backup holds a shared one
randfile "$D/big" $((64 << 20))
"$COFFER" -r "$R" backup "$D" > "$T/bg.out" 2> "$T/bg.err" &
BG=$!
E2E_PIDS+=("$BG")
has_lock() { [ -n "$(find "$R/locks" -type f ! -name '.*')" ]; }
wait_for has_lock || fail "backup took no lock"
kill -STOP "$BG"
expect_exit 11 "$COFFER" -r "$R" prune
assert_contains "$T/err" "held by" "the lock error names the holder"
assert_contains "$T/err" "pid $BG" "the lock error names the backup's pid"
# --retry-lock waits for it
"$COFFER" -r "$R" --retry-lock 60 prune > "$T/p.out" 2> "$T/p.err" &
PP=$!
E2E_PIDS+=("$PP")
sleep 1
kill -0 "$PP" 2> /dev/null || { cat "$T/p.err" >&2; fail "prune --retry-lock did not wait"; }
kill -CONT "$BG"
wait "$BG" || fail "backup failed"
wait "$PP" || { cat "$T/p.err" >&2; fail "prune --retry-lock failed after the backup ended"; }
expect_exit 0 "$COFFER" -r "$R" check
e2e_done
