#!/bin/bash
# interrupt.sh - an interrupted backup leaves a healthy repository: SIGINT
# mid-way exits 130 promptly without writing a snapshot, SIGKILL mid-way
# leaves only garbage; in both cases `check` passes and the earlier snapshot
# restores bit-exact, and after SIGKILL a new run completes and restores.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
X=$T/data/small
Y=$T/data/big
mkdir -p "$X/sub" "$Y"
randfile "$X/a" 300000
echo hello > "$X/sub/b"
ln -s a "$X/link"
# 160 MiB in 5 files: at ~50-500 MB/s the backup outlasts the first pack
for i in 1 2 3 4 5; do
	randfile "$Y/part$i" $((32 << 20))
done
init_repo "$R"
cof -r "$R" backup "$X"
EARLIER=$(latest_id "$R")

packs() { find "$R/data" -type f ! -name '.*' | wc -l; }
more_packs_than() { [ "$(packs)" -gt "$1" ]; }

# interrupted SIGNAL: back up X and Y, send SIGNAL once a new pack is stored;
# exit code in $RC, milliseconds from signal to exit in $MS
interrupted()
{
	local before pid t0
	before=$(packs)
	"$COFFER" -r "$R" backup "$X" "$Y" > "$T/bg.out" 2> "$T/bg.err" &
	pid=$!
	E2E_PIDS+=("$pid")
	wait_for more_packs_than "$before" || fail "no pack written within 20 s"
	kill -0 "$pid" 2> /dev/null || fail "the backup finished before it could be interrupted"
	t0=$(date +%s%N)
	kill "-$1" "$pid"
	wait "$pid"
	RC=$?
	MS=$((($(date +%s%N) - t0) / 1000000))
}

# restores_earlier: the first snapshot restores bit-exact
restores_earlier()
{
	rm -rf "$T/r"
	cof -r "$R" restore "$EARLIER" --target "$T/r"
	compare_trees "$X" "$T/r$X"
}

# --- SIGINT ------------------------------------------------------------------
interrupted INT
cat "$T/bg.err" >&2
check_eq 130 "$RC" "exit code after SIGINT"
assert_le "$MS" 5000 "milliseconds from SIGINT to exit"
assert_eq 1 "$(ls "$R/snapshots" | wc -l)" "snapshots after an interrupted backup"
cof -r "$R" check
restores_earlier
# no lock left behind by a clean interruption
[ -z "$(find "$R/locks" -type f 2> /dev/null)" ] || soft_fail "SIGINT left a lock: $(ls "$R/locks")"

# --- SIGKILL -----------------------------------------------------------------
interrupted KILL
assert_eq 137 "$RC" "exit status of a killed backup"
assert_eq 1 "$(ls "$R/snapshots" | wc -l)" "snapshots after a killed backup"
cof -r "$R" check
restores_earlier

# a new run completes, and everything restores
cof -r "$R" --json backup "$X" "$Y"
tail -n 1 "$T/out" > "$T/rerun.json"
note "re-run after the kill added $(json_field "$T/rerun.json" "j['summary']['data_added']") bytes"
cof -r "$R" check --read-data
rm -rf "$T/r"
cof -r "$R" restore latest --target "$T/r"
compare_trees "$X" "$T/r$X"
compare_trees "$Y" "$T/r$Y"
restores_earlier
e2e_done
