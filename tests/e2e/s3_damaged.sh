#!/bin/bash
# s3_damaged.sh - a damaged pack in an S3 repository: a restore (which
# streams each pack's blobs, opening each one as it arrives) names the file
# it could not restore and the pack, restores everything else bit-exact, and
# leaves neither the damaged file nor a temporary file behind.
#
# The repository: snapshot A (a1, d/a2), then B (A's files + b1, whose blob
# is in the pack B's backup added).  That pack is replaced in the store
# (through Swift's own API) by itself with a flipped byte, by its first half,
# and then deleted; after each, A restores bit-exact with exit 0 and B fails
# naming b1.  Skipped without COFFER_TEST_S3, or when the store is not Swift.
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_S3:-}" ] || skip "COFFER_TEST_S3 is not set (see tests/run.sh)"
[ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || skip "no AWS_* credentials"
command -v curl > /dev/null || skip "curl is not installed"
e2e_setup

endpoint=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^(https?://[^/]+)/.*#\1#')
base=$(printf '%s' "$COFFER_TEST_S3" | sed -E 's#^https?://[^/]+/([^/]+).*#\1#')
bucket=$(printf '%.40s-dmg-%s' "$base" "$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')")
R=s3:$endpoint/$bucket/repo

# The store's own (Swift) API changes the pack behind coffer's back, so that
# nothing of the code under test is involved: tempauth with the same
# credentials as the S3 ones.
curl -sS -D "$T/auth" -o /dev/null -H "X-Auth-User: $AWS_ACCESS_KEY_ID" -H "X-Auth-Key: $AWS_SECRET_ACCESS_KEY" \
	"$endpoint/auth/v1.0" 2> /dev/null
TOKEN=$(tr -d '\r' < "$T/auth" | sed -n 's/^[Xx]-[Aa]uth-[Tt]oken: //p')
SURL=$(tr -d '\r' < "$T/auth" | sed -n 's/^[Xx]-[Ss]torage-[Uu]rl: //p')
[ -n "$TOKEN" ] && [ -n "$SURL" ] || skip "the store is not Swift (no tempauth at /auth/v1.0): cannot damage a pack"
sw() { curl -sS --fail -H "X-Auth-Token: $TOKEN" "$@"; }
packs() # "size name" of every pack
{
	sw "$SURL/$bucket?prefix=repo/data/&format=json" > "$T/list.json" || fail "cannot list the container"
	"$PY" -c 'import json, sys
for o in json.load(open(sys.argv[1])): print(o["bytes"], o["name"])' "$T/list.json"
}

S=$T/src
mkdir -p "$S/d"
randfile "$S/a1" 300000
echo a2 > "$S/d/a2"
init_repo "$R"
cof -r "$R" backup -q "$S"
A=$(latest_id "$R")
cp -a "$S" "$T/copyA"
packs > "$T/p1"
randfile "$S/b1" 300000
cof -r "$R" backup -q "$S"
B=$(latest_id "$R")
packs > "$T/p2"
# the biggest pack B's backup added holds b1 (the others, B's trees)
KEY=$(comm -13 <(sort "$T/p1") <(sort "$T/p2") | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$KEY" ] || fail "B's backup added no pack"
PACK=$(basename "$KEY")
sw -o "$T/pack" "$SURL/$bucket/$KEY" || fail "cannot read $KEY back through Swift's API"
cof -r "$R" check --read-data

for how in flip trunc del; do
	cp "$T/pack" "$T/bad"
	case $how in
	flip) "$PY" -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 1
open(sys.argv[1], "wb").write(bytes(b))' "$T/bad" ;;
	trunc) truncate -s $(($(stat -c %s "$T/bad") / 2)) "$T/bad" ;;
	esac
	if [ $how = del ]; then
		sw -X DELETE "$SURL/$bucket/$KEY" > /dev/null || fail "$how: cannot delete $KEY"
	else
		sw -X PUT -T "$T/bad" "$SURL/$bucket/$KEY" > /dev/null || fail "$how: cannot replace $KEY"
	fi

	rm -rf "$T/r"
	"$COFFER" -r "$R" restore "$B" --target "$T/r" > "$T/out" 2> "$T/err"
	rc=$?
	sed 's/^/    /' "$T/err" >&2
	[ $rc != 0 ] && [ $rc -lt 128 ] || { cat "$T/err" >&2; fail "$how: the restore of B exited $rc"; }
	assert_contains "$T/err" "$S/b1" "$how: the file that was not restored"
	assert_contains "$T/err" "${PACK:0:16}" "$how: the damaged pack"
	[ ! -e "$T/r$S/b1" ] || fail "$how: b1 was restored from a damaged pack"
	cmp "$S/a1" "$T/r$S/a1" && cmp "$S/d/a2" "$T/r$S/d/a2" ||
		fail "$how: the files of B that do not need the damaged pack were not restored"
	[ -z "$(find "$T/r" -name '.coffer-tmp-*' -print -quit)" ] || fail "$how: a temporary file was left"

	rm -rf "$T/r"
	cof -r "$R" restore "$A" --target "$T/r"
	compare_trees "$T/copyA" "$T/r$S"

	# the pack as it was, for the next case
	sw -X PUT -T "$T/pack" "$SURL/$bucket/$KEY" > /dev/null || fail "cannot put $KEY back"
done
rm -rf "$T/r"
cof -r "$R" restore "$B" --target "$T/r"
compare_trees "$S" "$T/r$S"
e2e_done
