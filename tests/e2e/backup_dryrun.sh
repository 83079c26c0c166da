#!/bin/bash
# backup_dryrun.sh - `backup --dry-run` (-n) reports what a backup would add
# and writes nothing.
#
# Into a local repository and (with COFFER_TEST_S3) one in S3, each time:
#  - a dry run of the first backup, then of one after changes (a new file, a
#    changed one, a deleted one, the rest unchanged), and of a
#    --stdin-from-command backup (the command runs, its bytes are chunked):
#    exit 0, --json's summary has restic's keys with dry_run true and no
#    snapshot_id, the text form says "Would add ... nothing was written";
#  - the repository is byte for byte what it was: every object's name, size
#    and content (local: sha256 of each file; S3: Swift's own listing with
#    its md5 etags, read through Swift's API, not coffer's), no lock left,
#    the snapshot count unchanged, the directory cache file unchanged;
#  - the real backup that follows adds exactly what the dry run said:
#    data_added, data_blobs, tree_blobs, files_new, files_changed,
#    files_unmodified, dirs_*, total_* equal; data_added_packed equal but
#    for the trees' metadata that changed between the two runs (see real()).
# Also: -n is refused by a command that has no dry run, naming it.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
# the first tree (made again for the S3 repository)
make_tree()
{
	mkdir -p "$S/d/e" "$S/keep"
	randfile "$S/big" 3000000
	seq 1 200000 > "$S/d/text"
	echo small > "$S/d/e/small"
	randfile "$S/keep/k1" 200000
	echo gone > "$S/keep/gone"
}
make_tree

# the summary keys a dry run and the real run after it must agree on
# (data_added_packed apart: see real())
KEYS='files_new files_changed files_unmodified dirs_new dirs_changed dirs_unmodified data_blobs tree_blobs data_added total_files_processed total_bytes_processed'

# state REPO: every object of the repository, with its size and content hash
state()
{
	case $1 in
	s3:*)
		sw "$SURL/$bucket?prefix=repo/&format=json" > "$T/list.json" || fail "cannot list the container"
		"$PY" -c 'import json, sys
for o in sorted(json.load(open(sys.argv[1])), key=lambda o: o["name"]): print(o["name"], o["bytes"], o["hash"])' "$T/list.json"
		;;
	*)
		(cd "$1" && find . -print0 | sort -z | xargs -0 -n 200 sh -c \
			'for f; do if [ -f "$f" ]; then echo "$f $(stat -c %s "$f") $(sha256sum < "$f" | cut -c1-64)"; else echo "$f"; fi; done' sh)
		;;
	esac
}

cache_state()
{
	find "$COFFER_CACHE_DIR" -path "$COFFER_CACHE_DIR/keys" -prune -o -type f -print0 2>/dev/null |
		sort -z | xargs -0 -r sha256sum
}

snapshot_count()
{
	cof -r "$1" --json snapshots
	json_field "$T/out" 'len(j)'
}

# dry REPO WHAT ARGS...: a dry run that must leave REPO and the cache as
# they are; its summary in $T/dry.json
dry()
{
	local repo=$1 what=$2
	shift 2
	state "$repo" > "$T/before"
	cache_state > "$T/cache.before"
	local n0
	n0=$(snapshot_count "$repo")
	cof -r "$repo" --json backup -n "$@"
	cp "$T/out" "$T/dry.json"
	check_eq True "$(json_field "$T/dry.json" 'j["dry_run"]')" "$what: dry_run in the summary"
	check_eq False "$(json_field "$T/dry.json" '"snapshot_id" in j')" "$what: no snapshot_id (restic omits it)"
	check_eq summary "$(json_field "$T/dry.json" 'j["message_type"]')" "$what: the summary line"
	state "$repo" > "$T/after"
	cmp -s "$T/before" "$T/after" || { diff "$T/before" "$T/after" | head -20 >&2; soft_fail "$what: the dry run changed the repository"; }
	check_eq "$n0" "$(snapshot_count "$repo")" "$what: snapshot count after the dry run"
	cache_state > "$T/cache.after"
	cmp -s "$T/cache.before" "$T/cache.after" || soft_fail "$what: the dry run changed the directory cache"
	# the text form says what it would add and that nothing was written
	cof -r "$repo" backup --dry-run "$@"
	assert_contains "$T/out" "Would add to the repository" "$what: text summary"
	assert_contains "$T/out" "nothing was written" "$what: text summary"
	assert_not_contains "$T/out" "saved" "$what: text summary"
	state "$repo" > "$T/after"
	cmp -s "$T/before" "$T/after" || soft_fail "$what: the text dry run changed the repository"
}

# real REPO WHAT ARGS...: the real backup; its figures must be the dry run's
real()
{
	local repo=$1 what=$2 k
	shift 2
	cof -r "$repo" --json backup "$@"
	cp "$T/out" "$T/real.json"
	for k in $KEYS; do
		check_eq "$(json_field "$T/dry.json" "j['$k']")" "$(json_field "$T/real.json" "j['$k']")" \
			"$what: $k of the dry run vs the real backup"
	done
	# data_added_packed: the data blobs' sealed sizes are exact; a tree
	# blob records its entries' metadata, and what changed between the two
	# runs (a stream's time is "now", an ancestor such as /tmp got a new
	# entry) changes a few digits, so zstd packs that tree a few bytes
	# larger or smaller: at most 16 bytes per tree blob
	local dp rp tb
	dp=$(json_field "$T/dry.json" 'j["data_added_packed"]')
	rp=$(json_field "$T/real.json" 'j["data_added_packed"]')
	tb=$(json_field "$T/real.json" 'j["tree_blobs"]')
	local d=$((dp > rp ? dp - rp : rp - dp))
	[ "$d" -le $((16 * tb)) ] || soft_fail "$what: data_added_packed $dp (dry run) vs $rp (backup): more than the trees' metadata explains"
	note "$what: dry run said data_added=$(json_field "$T/dry.json" 'j["data_added"]') packed=$(json_field "$T/dry.json" 'j["data_added_packed"]'), the backup added $(json_field "$T/real.json" 'j["data_added"]') / $(json_field "$T/real.json" 'j["data_added_packed"]')"
}

run_all()
{
	local R=$1 tag=$2
	# first backup: nothing in the repository yet
	dry "$R" "$tag first" "$S"
	check_eq 5 "$(json_field "$T/dry.json" 'j["files_new"]')" "$tag first: files_new"
	[ "$(json_field "$T/dry.json" 'j["data_added"]')" -gt 3000000 ] || soft_fail "$tag first: data_added too small"
	real "$R" "$tag first" "$S"
	check_eq 1 "$(snapshot_count "$R")" "$tag: one snapshot after the real backup"

	# changes: one new file, one changed, one deleted, the rest unchanged
	randfile "$S/d/new" 500000
	seq 1 200001 > "$S/d/text"
	rm "$S/keep/gone"
	dry "$R" "$tag changed" "$S"
	check_eq 1 "$(json_field "$T/dry.json" 'j["files_new"]')" "$tag changed: files_new"
	check_eq 1 "$(json_field "$T/dry.json" 'j["files_changed"]')" "$tag changed: files_changed"
	check_eq 3 "$(json_field "$T/dry.json" 'j["files_unmodified"]')" "$tag changed: files_unmodified"
	real "$R" "$tag changed" "$S"

	# nothing changed: a dry run would add no data
	dry "$R" "$tag unchanged" "$S"
	check_eq 0 "$(json_field "$T/dry.json" 'j["data_added"]')" "$tag unchanged: data_added"

	# a command's output: the command runs, nothing is stored
	rm -f "$T/ran"
	dry "$R" "$tag command" --stdin-from-command "touch $T/ran; seq 1 300000" --stdin-filename dump/seq.txt
	[ -e "$T/ran" ] || soft_fail "$tag command: the dry run did not run the command"
	check_eq 1 "$(json_field "$T/dry.json" 'j["files_new"]')" "$tag command: files_new"
	real "$R" "$tag command" --stdin-from-command "seq 1 300000" --stdin-filename dump/seq.txt
	cof -r "$R" dump latest /dump/seq.txt
	cmp -s "$T/out" <(seq 1 300000) || soft_fail "$tag command: the real backup's dump differs"
	cof -r "$R" check --read-data
}

R=$T/repo
init_repo "$R"
run_all "$R" local
[ -z "$(ls -A "$R/locks")" ] || soft_fail "a lock was left in the local repository"

# -n on a command without a dry run is refused, naming it
expect_exit 1 "$COFFER" -r "$R" snapshots -n
assert_contains "$T/err" "snapshots does not take -n/--dry-run" "snapshots -n"
expect_exit 1 "$COFFER" -r "$R" check --dry-run
assert_contains "$T/err" "check does not take --dry-run" "check --dry-run"

if [ -n "${COFFER_TEST_S3:-}" ] && [ -n "${AWS_ACCESS_KEY_ID:-}" ] && command -v curl > /dev/null; then
	endpoint=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^(https?://[^/]+)/.*#\1#')
	base=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^https?://[^/]+/([^/]+).*#\1#')
	bucket=$(printf '%.40s-dry-%s' "$base" "$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')")
	# Swift's own API lists the container: nothing of coffer is involved
	curl -sS -D "$T/auth" -o /dev/null -H "X-Auth-User: $AWS_ACCESS_KEY_ID" \
		-H "X-Auth-Key: $AWS_SECRET_ACCESS_KEY" "$endpoint/auth/v1.0" 2> /dev/null
	TOKEN=$(tr -d '\r' < "$T/auth" | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p')
	SURL=$(tr -d '\r' < "$T/auth" | sed -n 's/^[Xx]-[Ss]torage-[Uu]rl: //p')
	if [ -n "$TOKEN" ] && [ -n "$SURL" ]; then
		sw() { curl -sS --fail -H "X-Auth-Token: $TOKEN" "$@"; }
		# the same tree again, from the start
		rm -rf "$S" "$COFFER_CACHE_DIR"
		make_tree
		R3=s3:$endpoint/$bucket/repo
		init_repo "$R3"
		run_all "$R3" s3
		state "$R3" | grep -q '^repo/locks/' && soft_fail "a lock was left in the S3 repository"
	else
		note "the store is not Swift (no tempauth): S3 part skipped"
	fi
else
	note "COFFER_TEST_S3 is not set: S3 part skipped"
fi
e2e_done
