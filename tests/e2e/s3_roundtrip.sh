#!/bin/bash
# s3_roundtrip.sh - a repository in S3 behaves like a local one.
#
# Against the strict S3 server named by COFFER_TEST_S3 (http://HOST:PORT/BUCKET,
# started by tests/run.sh with tests/infra/swift-s3-up.sh; skipped without it),
# in a bucket of its own that does not exist yet:
#  - a missing bucket is reported by name; init creates it; a second init refuses
#  - listings page (COFFER_S3_LIST_MAX_KEYS=4, a dozen snapshots, indexes, packs):
#    every snapshot is listed, check --read-data is clean
#  - restores are bit-exact with metadata (the first snapshot and the last), and
#    the same backups into a local repository list the same files
#  - credentials from *_FILE variables work
#  - a wrong secret: exit 1, SignatureDoesNotMatch named on one line, no snapshot
#  - credentials that may not create the bucket: the bucket is named
#  - no secret ever appears in any output, -v -v included
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_S3:-}" ] || skip "COFFER_TEST_S3 is not set (see tests/run.sh)"
[ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || skip "no AWS_* credentials"
e2e_setup

endpoint=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^(https?://[^/]+)/.*#\1#')
base=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^https?://[^/]+/([^/]+).*#\1#')
bucket=$(printf '%.40s-rt-%s' "$base" "$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')")
R=s3:$endpoint/$bucket/repo
SECRET=$AWS_SECRET_ACCESS_KEY
WRONG=WrongSecret-$RANDOM$RANDOM-do-not-print
ALL=$T/all-output # every command's stdout and stderr, searched for secrets at the end
: > "$ALL"

# run CODE ARGS...: coffer with ARGS must exit with CODE; output kept for the secret check
run()
{
	local want=$1
	shift
	"$COFFER" "$@" > "$T/out" 2> "$T/err"
	local got=$?
	cat "$T/out" "$T/err" >> "$ALL"
	if [ "$got" != "$want" ]; then
		echo "  command: coffer $*" >&2
		sed 's/^/    /' "$T/out" "$T/err" | head -40 >&2
		fail "expected exit $want, got $got: coffer $*"
	fi
}

snapshot_count()
{
	run 0 -r "$1" --json snapshots
	json_field "$T/out" 'len(j)'
}

# --- the bucket does not exist yet ---
run 10 -r "$R" snapshots # 10: no repository there
assert_contains "$T/err" "$bucket" "a missing bucket is named"
assert_one_line_err "missing bucket"

run 0 -r "$R" init --kdf-passes 1 --kdf-memory 64
run 1 -r "$R" init --kdf-passes 1 --kdf-memory 64
assert_contains "$T/err" "already exists" "second init"

# --- a tree, backed up a dozen times with small listing pages ---
S=$T/src
mkdir -p "$S/dir/sub" "$S/empty-dir"
randfile "$S/random-2M" $((2 << 20))
seq 1 100000 > "$S/compressible.txt"
: > "$S/empty"
printf 'x' > "$S/one-byte"
ln -s random-2M "$S/link"
ln -s does/not/exist "$S/dangling"
echo linked > "$S/hl-1" && ln "$S/hl-1" "$S/dir/hl-2"
echo odd > "$S/name with spaces and ünïcødé"
echo private > "$S/dir/mode-0600" && chmod 0600 "$S/dir/mode-0600"
for i in $(seq 1 40); do randfile "$S/dir/sub/small-$i" $((RANDOM % 20000 + 1)); done

L=$T/local-repo
expect_exit 0 "$COFFER" -r "$L" init --kdf-passes 1 --kdf-memory 64

export COFFER_S3_LIST_MAX_KEYS=4
N=12
for i in $(seq 1 $N); do
	[ "$i" = 2 ] && cp -a "$S" "$T/src-at-1" # the tree as snapshot 1 saw it
	[ "$i" -gt 1 ] && randfile "$S/dir/changing" $((i * 1000 + 7))
	run 0 -r "$R" backup --host h --time "2024-01-01 00:00:$(printf %02d "$i")" "$S"
	expect_exit 0 "$COFFER" -r "$L" backup --host h --time "2024-01-01 00:00:$(printf %02d "$i")" "$S"
done
check_eq "$N" "$(snapshot_count "$R")" "snapshots listed through pages of 4"

run 0 -r "$R" check --read-data
assert_contains "$T/out" "no errors" "check --read-data"

# restores: the last snapshot and the first, bit-exact with metadata
run 0 -r "$R" restore latest --target "$T/restore-last"
compare_trees "$S" "$T/restore-last$S"
run 0 -r "$R" --json snapshots
first=$(json_field "$T/out" 'sorted(j, key=lambda s: s["time"])[0]["id"]')
run 0 -r "$R" restore "$first" --target "$T/restore-first" --threads 1 # one thread streams every pack
compare_trees "$T/src-at-1" "$T/restore-first$S"

# the same backups in a local repository list the same files
run 0 -r "$R" ls latest
sort "$T/out" > "$T/ls-s3"
expect_exit 0 "$COFFER" -r "$L" ls latest
sort "$T/out" > "$T/ls-local"
cmp -s "$T/ls-s3" "$T/ls-local" || { diff "$T/ls-s3" "$T/ls-local" | head >&2; soft_fail "ls differs from the local repository"; }
unset COFFER_S3_LIST_MAX_KEYS

# --- credentials from files (Docker secrets) ---
printf '%s\n' "$AWS_ACCESS_KEY_ID" > "$T/akid"
printf '%s\n' "$SECRET" > "$T/secret"
(
	unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	export AWS_ACCESS_KEY_ID_FILE=$T/akid AWS_SECRET_ACCESS_KEY_FILE=$T/secret
	run 0 -r "$R" snapshots
) || soft_fail "credentials from *_FILE"

# --- a wrong secret: refused at once, named, nothing written ---
AWS_SECRET_ACCESS_KEY=$WRONG run 1 -r "$R" snapshots
assert_contains "$T/err" "SignatureDoesNotMatch" "wrong secret"
assert_one_line_err "wrong secret"
randfile "$S/after-wrong-secret" 1000
AWS_SECRET_ACCESS_KEY=$WRONG run 1 -r "$R" backup "$S"
assert_contains "$T/err" "SignatureDoesNotMatch" "backup with a wrong secret"
AWS_SECRET_ACCESS_KEY=$WRONG run 1 -v -v -r "$R" snapshots
check_eq "$N" "$(snapshot_count "$R")" "snapshots after the refused backup"

# --- credentials that may not create the bucket (tempauth user without rights,
# configured by swift-s3-up.sh) ---
nb=$(printf '%.40s-nc-%s' "$base" "$RANDOM$RANDOM")
AWS_ACCESS_KEY_ID=test:visitor AWS_SECRET_ACCESS_KEY=visiting \
	"$COFFER" -r "s3:$endpoint/$nb" init --kdf-passes 1 --kdf-memory 64 > "$T/out" 2> "$T/err"
rc=$?
cat "$T/out" "$T/err" >> "$ALL"
if grep -qE "InvalidAccessKeyId|SignatureDoesNotMatch" "$T/err"; then
	note "the server has no test:visitor user: the missing-bucket-without-rights case is not tested"
else
	check_eq 1 "$rc" "init by a user who may not create buckets"
	assert_contains "$T/err" "\"$nb\"" "the bucket is named"
	assert_contains "$T/err" "AccessDenied" "the refusal is named"
	assert_one_line_err "init without rights"
	# and nothing was created behind the user's back
	run 0 -v -r "s3:$endpoint/$nb" init --kdf-passes 1 --kdf-memory 64
	assert_contains "$T/err" "created bucket $nb" "the bucket was still missing"
fi

# --- the same repository over https (swift-s3-up.sh's TLS proxy): bodies go
# out as UNSIGNED-PAYLOAD (TLS authenticates them), or signed with
# --s3-sign-payload; the self-signed certificate needs --cacert ---
if [ -n "${COFFER_TEST_S3_TLS:-}" ] && [ -n "${COFFER_TEST_S3_CACERT:-}" ]; then
	tls_ep=$(printf '%s' "$COFFER_TEST_S3_TLS" | sed -E 's#^(https://[^/]+)/.*#\1#')
	RT=s3:$tls_ep/$bucket/repo
	"$COFFER" -r "$RT" snapshots > "$T/out" 2> "$T/err"
	rc=$?
	cat "$T/out" "$T/err" >> "$ALL"
	[ "$rc" != 0 ] || fail "an unknown certificate was accepted"
	assert_one_line_err "unknown certificate"
	assert_contains "$T/err" "--cacert" "the refusal says how to trust a private CA"
	randfile "$S/over-https" 300000
	run 0 -r "$RT" --cacert "$COFFER_TEST_S3_CACERT" backup --host h "$S"
	randfile "$S/over-https-signed" 300000
	run 0 -r "$RT" --cacert "$COFFER_TEST_S3_CACERT" --s3-sign-payload backup --host h "$S"
	# the agent's keys work for the CLI too (a restore container sharing its env file)
	COFFER_CACERT=$COFFER_TEST_S3_CACERT COFFER_S3_CONNECTIONS=2 run 0 -r "$RT" check --read-data
	assert_contains "$T/out" "no errors" "check --read-data over https"
	COFFER_S3_CONNECTIONS=0 run 1 -r "$RT" snapshots
	assert_one_line_err "COFFER_S3_CONNECTIONS"
	COFFER_CACERT=$COFFER_TEST_S3_CACERT COFFER_S3_SIGN_PAYLOAD=yes run 0 -r "$RT" restore latest \
		--target "$T/restore-https"
	compare_trees "$S" "$T/restore-https$S"
	check_eq $((N + 2)) "$(snapshot_count "$R")" "snapshots after the https backups (read over http)"
else
	note "COFFER_TEST_S3_TLS is not set: the https endpoint is not tested"
fi

# --- no secret in any output ---
for s in "$SECRET" "$WRONG"; do
	if [ "${#s}" -ge 6 ] && grep -qF -- "$s" "$ALL"; then
		grep -nF -- "$s" "$ALL" | head -5 >&2
		soft_fail "a secret appears in coffer's output"
	fi
done
e2e_done
