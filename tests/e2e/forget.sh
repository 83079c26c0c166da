#!/bin/bash
# forget.sh - restic's retention policy end to end.  Snapshots are made at
# chosen dates with `backup --time`; `forget --dry-run --json` must keep
# exactly the ones restic's documentation says, with restic's reasons, and
# change nothing; the real run removes the others.  Covers --keep-daily/
# -weekly/-monthly together (the documentation's "last snapshot of the day,
# of the week, of the month" rule, including the oldest-snapshot fallback),
# --keep-last, --keep-within, --keep-tag, --group-by and the --host filter,
# forget by id, and refusing an empty policy.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
D=$T/src
mkdir -p "$D"
init_repo "$R"

snap() # DATE [ARGS...]: a snapshot of $D at DATE (UTC)
{
	local d=$1
	shift
	echo "$d" > "$D/f"
	cof -r "$R" backup -q "$D" --time "$d" "$@"
}

# kept_times FILE: the times (YYYY-MM-DD HH:MM) kept in a forget --json output, sorted
kept_times()
{
	"$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(" ".join(sorted(s["time"][:16].replace("T", " ") for g in j for s in g["keep"])))' "$1"
}
removed_count()
{
	"$PY" -c 'import json,sys; print(sum(len(g["remove"]) for g in json.load(open(sys.argv[1]))))' "$1"
}

# --- daily snapshots 2023-12-20 .. 2024-01-15 at noon --------------------------
for day in $(seq 0 26); do
	snap "$(date -u -d "2023-12-20 +$day days" '+%Y-%m-%d 12:00:00')"
done
assert_eq 27 "$(ls "$R/snapshots" | wc -l)" "snapshots made"
before=$(ls "$R/snapshots" | sort)

# The documentation's rule: --keep-daily 7 keeps the 7 newest days; --keep-weekly 2
# the newest of each of the 2 newest ISO weeks (Mon 15 Jan is week 3, Sun 14 Jan
# week 2); --keep-monthly 2 the newest of January and of December (31 Dec).
cof -r "$R" forget --dry-run --json --keep-daily 7 --keep-weekly 2 --keep-monthly 2
cp "$T/out" "$T/f1.json"
check_eq "2023-12-31 12:00 2024-01-09 12:00 2024-01-10 12:00 2024-01-11 12:00 2024-01-12 12:00 2024-01-13 12:00 2024-01-14 12:00 2024-01-15 12:00" \
	"$(kept_times "$T/f1.json")" "kept by --keep-daily 7 --keep-weekly 2 --keep-monthly 2"
check_eq 19 "$(removed_count "$T/f1.json")" "removed by that policy"
# the reasons restic prints
reasons=$(json_field "$T/f1.json" '[r["matches"] for r in j[0]["reasons"] if r["snapshot"]["time"].startswith("2024-01-15")][0]')
check_eq "['daily snapshot', 'weekly snapshot', 'monthly snapshot']" "$reasons" "reasons for the newest snapshot"
reasons=$(json_field "$T/f1.json" '[r["matches"] for r in j[0]["reasons"] if r["snapshot"]["time"].startswith("2023-12-31")][0]')
check_eq "['monthly snapshot']" "$reasons" "reasons for 31 Dec"
# the text form names the rule too, and a dry run changes nothing
cof -r "$R" forget --dry-run --keep-daily 7 --keep-weekly 2 --keep-monthly 2
assert_contains "$T/out" "weekly snapshot" "dry-run text lists reasons"
assert_contains "$T/out" "remove 19 snapshots" "dry-run text lists removals"
assert_eq "$before" "$(ls "$R/snapshots" | sort)" "snapshots after a dry run"

# --keep-monthly 3 with only two months: the oldest snapshot is kept as
# "oldest monthly snapshot" (restic >= 0.17)
cof -r "$R" forget --dry-run --json --keep-monthly 3
cp "$T/out" "$T/f2.json"
check_eq "2023-12-20 12:00 2023-12-31 12:00 2024-01-15 12:00" "$(kept_times "$T/f2.json")" "--keep-monthly 3"
reasons=$(json_field "$T/f2.json" '[r["matches"] for r in j[0]["reasons"] if r["snapshot"]["time"].startswith("2023-12-20")][0]')
check_eq "['oldest monthly snapshot']" "$reasons" "reason for the oldest snapshot"

# --keep-last 3, --keep-within 3d (relative to the newest snapshot, not now)
cof -r "$R" forget --dry-run --json --keep-last 3
check_eq "2024-01-13 12:00 2024-01-14 12:00 2024-01-15 12:00" "$(kept_times "$T/out")" "--keep-last 3"
cof -r "$R" forget --dry-run --json --keep-within 3d
check_eq "2024-01-13 12:00 2024-01-14 12:00 2024-01-15 12:00" "$(kept_times "$T/out")" "--keep-within 3d"

# --- tags, hosts, groups -------------------------------------------------------
snap "2024-01-16 12:00:00" --tag keepme
snap "2024-01-16 13:00:00" --host other
snap "2024-01-16 14:00:00" --host other
cof -r "$R" forget --dry-run --json --keep-last 1 --keep-tag keepme
# two groups (host,paths): this host keeps its newest and the tagged one (the same
# snapshot here), the other host keeps its newest
check_eq 2 "$(json_field "$T/out" 'len(j)')" "groups by host,paths"
check_eq "2024-01-16 12:00 2024-01-16 14:00" "$(kept_times "$T/out")" "--keep-last 1 per host"
cof -r "$R" forget --dry-run --json --keep-last 1 --group-by paths
check_eq "2024-01-16 14:00" "$(kept_times "$T/out")" "--group-by paths: one group"
cof -r "$R" forget --dry-run --json --keep-last 1 --host other
check_eq 1 "$(json_field "$T/out" 'len(j)')" "--host filters the groups"
check_eq 1 "$(removed_count "$T/out")" "--host other removes only its own older snapshot"

# an empty policy is refused; unknown --group-by is refused
expect_exit 1 "$COFFER" -r "$R" forget
assert_contains "$T/err" "no policy" "empty policy refused"
expect_exit 1 "$COFFER" -r "$R" forget --keep-last 1 --group-by colour

# --- for real -------------------------------------------------------------------
cof -r "$R" forget --keep-daily 7 --keep-weekly 2 --keep-monthly 2
"$COFFER" -r "$R" --json snapshots > "$T/s.json" || fail "snapshots"
# this host: the 7 days up to 16 Jan, weeks 3 and 2 (16 and 14 Jan), months
# January and December; the other host: its newest, and its oldest as "oldest
# daily snapshot" because the daily rule still had counts left
check_eq "2023-12-31 12:00 2024-01-10 12:00 2024-01-11 12:00 2024-01-12 12:00 2024-01-13 12:00 2024-01-14 12:00 2024-01-15 12:00 2024-01-16 12:00 2024-01-16 13:00 2024-01-16 14:00" \
	"$("$PY" -c 'import json,sys; print(" ".join(sorted(s["time"][:16].replace("T"," ") for s in json.load(open(sys.argv[1])))))' "$T/s.json")" \
	"snapshots left after forget"
# forget by id
id=$(json_field "$T/s.json" '[s["id"] for s in j if s["time"].startswith("2023-12-31")][0]')
cof -r "$R" forget "${id:0:8}"
[ ! -e "$R/snapshots/$id" ] || soft_fail "forget ID left the snapshot"
[ -z "$(find "$R/locks" -type f ! -name '.*')" ] || soft_fail "forget left a lock"
cof -r "$R" check
e2e_done
