#!/bin/bash
# restore_subfolder.sh - restic's SNAPSHOT:SUBFOLDER syntax.
#  - `restore latest:/ABS/SRC/app --target DIR`: DIR holds exactly app's
#    contents (paths relative to app; nothing else of the snapshot), equal
#    in content and metadata to the source folder; an id prefix works too;
#  - --include is relative to the folder (restic's `79766175:/work
#    --include /foo`); --delete removes only DIR's extras;
#  - a folder the snapshot does not have: exit 1 naming it, DIR not made;
#    a file instead of a folder: exit 1; `SNAP:/` is the whole snapshot;
#  - ls SNAP:FOLDER lists the folder with paths relative to it; dump
#    SNAP:FOLDER FILE writes that file.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S/app/conf/d" "$S/app/data" "$S/other"
echo 'listen 80' > "$S/app/conf/site.conf"
echo deep > "$S/app/conf/d/x"
randfile "$S/app/data/blob" 700000
chmod 0750 "$S/app/data"
touch -d '2020-02-03 04:05:06.123456789' "$S/app/conf/site.conf"
echo not-this > "$S/other/o"
echo top > "$S/top"
R=$T/repo
init_repo "$R"
cof -r "$R" backup "$S"
ID=$(latest_id "$R")

# the folder only, its contents straight into the target
cof -r "$R" restore "latest:$S/app" --target "$T/r1"
compare_trees "$S/app" "$T/r1"
[ -e "$T/r1/other" ] || [ -e "$T/r1/top" ] || [ -e "$T/r1$S" ] && soft_fail "something outside the folder was restored"

# by id prefix, with a trailing slash
cof -r "$R" restore "${ID:0:8}:$S/app/conf/" --target "$T/r2"
compare_trees "$S/app/conf" "$T/r2"

# --include relative to the folder
cof -r "$R" restore "latest:$S/app" --target "$T/r3" --include /conf/d
check_eq "deep" "$(cat "$T/r3/conf/d/x" 2>/dev/null)" "--include /conf/d under the folder"
[ -e "$T/r3/data" ] && soft_fail "--include /conf/d restored data/ too"
[ -e "$T/r3/conf/site.conf" ] && soft_fail "--include /conf/d restored conf/site.conf too"

# --delete: extras in the target go, the target equals the folder
mkdir -p "$T/r4"
echo extra > "$T/r4/extra"
cof -r "$R" restore "latest:$S/app" --target "$T/r4" --delete
[ -e "$T/r4/extra" ] && soft_fail "--delete left an extra file"
compare_trees "$S/app" "$T/r4"

# a folder the snapshot lacks: named, exit 1, nothing made
expect_exit 1 "$COFFER" -r "$R" restore "latest:$S/nope" --target "$T/r5"
assert_contains "$T/err" "has no folder $S/nope" "missing folder named"
assert_one_line_err "missing folder"
[ -e "$T/r5" ] && soft_fail "a refused restore made the target"
expect_exit 1 "$COFFER" -r "$R" restore "latest:$S/top" --target "$T/r6"
assert_contains "$T/err" "not a folder" "a file is not a folder"
expect_exit 1 "$COFFER" -r "$R" restore "latest:$S/app" --path-map "$S/app=$T/r7"
assert_contains "$T/err" "--target DIR" "SNAP:FOLDER without --target"

# SNAP:/ is the whole snapshot
cof -r "$R" restore "latest:/" --target "$T/r8"
compare_trees "$S" "$T/r8$S"

# ls and dump
cof -r "$R" ls "latest:$S/app"
printf '/conf\n/conf/d\n/conf/d/x\n/conf/site.conf\n/data\n/data/blob\n' > "$T/want"
sort "$T/out" > "$T/got"
cmp -s "$T/want" "$T/got" || { diff "$T/want" "$T/got" >&2; soft_fail "ls SNAP:FOLDER"; }
cof -r "$R" ls "latest:$S/app" conf/d
check_eq "$(printf '/conf/d\n/conf/d/x')" "$(cat "$T/out")" "ls SNAP:FOLDER PATH"
cof -r "$R" dump "latest:$S/app" conf/site.conf
check_eq "listen 80" "$(cat "$T/out")" "dump SNAP:FOLDER FILE"
expect_exit 1 "$COFFER" -r "$R" ls "latest:$S/nope"
assert_contains "$T/err" "has no folder" "ls of a missing folder"
e2e_done
