#!/bin/bash
# make-corpus.sh BUILD_DIR - regenerate the seeds taken from a real repository
# (tests/golden/repo-v1, password "golden"): the plaintext of its config,
# index, snapshot, trees and pack headers, through corpus_dump.c linked
# against BUILD_DIR/libcoffer.a.  The other seeds (S3 XML, URLs, cron
# expressions, key files, chunker input) are small hand-written files kept
# as they are.  .ci/run hands tests/fuzz/corpus/<target> to each target.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mods="libsodium libzstd jansson libarchive sqlite3 libcurl libmariadb libcrypto expat libmicrohttpd libpq"
# shellcheck disable=SC2046
cc -O1 -Wall -I"$here" -o "$tmp/corpus_dump" "$here/tests/fuzz/corpus_dump.c" "$build/libcoffer.a" \
	$(pkg-config --libs $mods) -lpthread -lm
"$tmp/corpus_dump" "$here/tests/golden/repo-v1" golden "$tmp"
c=$here/tests/fuzz/corpus
cp "$tmp"/tree.* "$c/fuzz_tree/"
cp "$tmp"/snapshot.0 "$c/fuzz_snapshot/"
{ printf '\x00'; cat "$tmp/index.0"; } > "$c/fuzz_repo_parsers/index.0"
for f in "$tmp"/packhdr.*; do { printf '\x01'; cat "$f"; } > "$c/fuzz_repo_parsers/$(basename "$f")"; done
{ printf '\x02'; cat "$tmp/config.0"; } > "$c/fuzz_repo_parsers/config.0"
cp "$here"/tests/golden/repo-v1/keys/* "$c/fuzz_keyfile/golden.0"
