#!/bin/bash
# copy.sh - `coffer copy` between repositories with different passwords (so
# different keys and blob ids): the copied snapshots restore bit-exact from
# the target with the same time, host, paths and tags; copying again copies
# nothing and adds no byte; after a new backup only the new snapshot is
# copied and only its new data travels; a snapshot can be named; the target
# checks clean with --read-data.  With COFFER_TEST_S3=http://HOST:PORT/BUCKET set (see
# tests/infra/swift-s3-up.sh) the same is done from the local repository to
# an S3 one and back.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src-repo
R=$T/dst-repo
D=$T/data
mkdir -p "$D/sub"
printf 'other password\n' > "$T/pw2"
randfile "$D/a.bin" $((6 << 20))
randfile "$D/sub/b.bin" $((3 << 20))
seq 1 100000 > "$D/sub/text"
init_repo "$S"
COFFER_PASSWORD_FILE=$T/pw2 init_repo "$R"
cof -r "$S" backup -q "$D" --tag first --host alpha --time "2024-03-01 10:00:00"
cp -a "$D" "$T/v1"
echo changed >> "$D/sub/text"
cof -r "$S" backup -q "$D" --host alpha --time "2024-03-02 10:00:00"
cp -a "$D" "$T/v2"

dst() { COFFER_PASSWORD_FILE=$T/pw2 "$COFFER" -r "$R" "$@"; }
snaps() { "$PY" -c 'import json,sys; print(" ".join(sorted("%s|%s|%s|%s" % (s["time"], s["hostname"], ",".join(s["paths"]), ",".join(s.get("tags") or [])) for s in json.load(open(sys.argv[1])))))' "$1"; }

expect_exit 0 env COFFER_PASSWORD_FILE="$T/pw2" "$COFFER" -r "$R" copy --from-repo "$S" --from-password-file "$PWFILE"
cp "$T/out" "$T/copy1.out"
assert_contains "$T/copy1.out" "2 snapshots copied" "first copy"
"$COFFER" -r "$S" --json snapshots > "$T/s.json"
dst --json snapshots > "$T/d.json"
check_eq "$(snaps "$T/s.json")" "$(snaps "$T/d.json")" "copied snapshots: time, host, paths, tags"
check_eq "$(json_field "$T/s.json" 'sorted(s["id"] for s in j)')" \
	"$(json_field "$T/d.json" 'sorted(s["original"] for s in j)')" "the copies name their originals"
check_eq "[]" "$(json_field "$T/d.json" '[s["tree"] for s in j if s["tree"] in [x["tree"] for x in json.load(open(sys.argv[1].replace("d.json","s.json")))]]')" \
	"trees get new ids in the target (different keys)"

# restore each copy from the target
for v in 1 2; do
	id=$(json_field "$T/d.json" "[s['id'] for s in j if s['time'].startswith('2024-03-0$v')][0]")
	rm -rf "$T/r$v"
	expect_exit 0 dst restore "$id" --target "$T/r$v"
	compare_trees "$T/v$v" "$T/r$v$D"
done
expect_exit 0 dst check --read-data

# a second copy copies nothing and writes nothing
before=$(cd "$R" && find data index snapshots -type f | sort)
expect_exit 0 env COFFER_PASSWORD_FILE="$T/pw2" "$COFFER" -r "$R" --json copy --from-repo "$S" --from-password-file "$PWFILE"
check_eq 0 "$(json_field "$T/out" 'j["snapshots_copied"]')" "snapshots copied the second time"
check_eq 2 "$(json_field "$T/out" 'j["snapshots_skipped"]')" "snapshots found already there"
check_eq 0 "$(json_field "$T/out" 'j["bytes_stored"]')" "bytes stored the second time"
check_eq "$before" "$(cd "$R" && find data index snapshots -type f | sort)" "target files after a second copy"

# a new snapshot: only it is copied, and only its new data travels
randfile "$D/new.bin" $((1 << 20))
cof -r "$S" backup -q "$D" --host alpha --time "2024-03-03 10:00:00"
expect_exit 0 env COFFER_PASSWORD_FILE="$T/pw2" "$COFFER" -r "$R" --json copy --from-repo "$S" --from-password-file "$PWFILE"
check_eq 1 "$(json_field "$T/out" 'j["snapshots_copied"]')" "snapshots copied after one more backup"
stored=$(json_field "$T/out" 'j["bytes_stored"]')
assert_le "$stored" $(((1 << 20) + 200000)) "bytes stored for one new 1 MiB file"
rm -rf "$T/r3"
expect_exit 0 dst restore latest --target "$T/r3"
compare_trees "$D" "$T/r3$D"

# copying a named snapshot into a third repository
init_repo "$T/third"
id=$(json_field "$T/s.json" "[s['id'] for s in j if s['time'].startswith('2024-03-01')][0]")
cof -r "$T/third" copy --from-repo "$S" "${id:0:8}"
assert_contains "$T/out" "1 snapshots copied" "copy of one named snapshot"
# the same repository as source and target is refused
expect_exit 1 "$COFFER" -r "$S" copy --from-repo "$S"

# --- S3 ------------------------------------------------------------------------
if [ -n "${COFFER_TEST_S3:-}" ]; then
	# COFFER_TEST_S3 is http[s]://HOST:PORT/BUCKET (tests/run.sh); a location needs "s3:"
	S3=s3:${COFFER_TEST_S3#s3:}/copy-$RANDOM$RANDOM
	init_repo "$S3"
	cof -r "$S3" copy --from-repo "$S"
	assert_contains "$T/out" "3 snapshots copied" "copy local -> S3"
	cof -r "$S3" copy --from-repo "$S"
	assert_contains "$T/out" "0 snapshots copied" "second copy local -> S3"
	rm -rf "$T/r4"
	cof -r "$S3" restore latest --target "$T/r4"
	compare_trees "$D" "$T/r4$D"
	cof -r "$S3" check --read-data
	init_repo "$T/back"
	cof -r "$T/back" copy --from-repo "$S3"
	assert_contains "$T/out" "3 snapshots copied" "copy S3 -> local"
else
	note "COFFER_TEST_S3 not set: the S3 part is skipped"
fi
e2e_done
