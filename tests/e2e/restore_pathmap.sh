#!/bin/bash
# restore_pathmap.sh - --path-map SNAP_PATH=DIR puts the contents of each
# mapped snapshot directory directly into its own directory (a restore
# container that mounts every volume separately), without --target when
# every include is mapped; --delete applies inside each mapped directory;
# an include that no map covers needs --target.
. "$(dirname "$0")/lib.sh"
e2e_setup

V=$T/volumes
mkdir -p "$V/app_data/_data/sub" "$V/db_data/_data" "$V/other/_data"
randfile "$V/app_data/_data/blob" $((3 << 20))
echo app > "$V/app_data/_data/sub/conf"
randfile "$V/db_data/_data/ibdata1" $((5 << 20))
chmod 0700 "$V/db_data/_data"
echo other > "$V/other/_data/o"
find "$V" -depth -exec touch -d '2022-01-02 03:04:05' {} +

init_repo "$T/repo"
cof -r "$T/repo" backup "$V"

M1=$T/mnt/app
M2=$T/mnt/db
mkdir -p "$M2"
echo "stale" > "$M2/left-over"
cof -r "$T/repo" restore latest --delete \
	--path-map "$V/app_data/_data=$M1" --path-map "$V/db_data/_data=$M2"
compare_trees "$V/app_data/_data" "$M1"
compare_trees "$V/db_data/_data" "$M2"
[ -e "$M2/left-over" ] && soft_fail "--delete did not clean the mapped directory"
[ -e "$T/mnt/app/app_data" ] && soft_fail "the mapped tree was nested instead of put directly into DIR"
[ -e "$T/mnt/other" ] || [ -e "$M1/o" ] && soft_fail "an unmapped volume was restored"
assert_eq 700 "$(stat -c %a "$M2")" "mode of the mapped directory itself"

# an include inside a mapped tree narrows it
rm -rf "$M1"
cof -r "$T/repo" restore latest --path-map "$V/app_data/_data=$M1" --include "$V/app_data/_data/sub"
[ -f "$M1/sub/conf" ] || soft_fail "included file missing from the mapped directory"
[ -e "$M1/blob" ] && soft_fail "--include inside a map restored more than asked"

# mapped and unmapped together: the rest goes to --target, mapped paths only to their map
rm -rf "$M1"
cof -r "$T/repo" restore latest --target "$T/rest" --path-map "$V/app_data/_data=$M1"
compare_trees "$V/app_data/_data" "$M1"
compare_trees "$V/other" "$T/rest$V/other"
[ -e "$T/rest$V/app_data/_data/blob" ] && soft_fail "a mapped path was also restored under --target"

# an include no map covers, without --target: refused, nothing written
expect_exit 1 "$COFFER" -r "$T/repo" restore latest --path-map "$V/app_data/_data=$T/x" --include "$V/other"
assert_contains "$T/err" "--target" "the error says what is missing"
# a map of something that is not in the snapshot
expect_exit 1 "$COFFER" -r "$T/repo" restore latest --path-map "/no/such/dir=$T/y"
assert_contains "$T/err" "/no/such/dir" "the error names the missing snapshot path"
[ -e "$T/y" ] && soft_fail "a failed --path-map created its directory"
e2e_done
