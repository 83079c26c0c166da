#!/usr/bin/env bash
# examples/quickstart.sh [BUILD_DIR] - coffer's main job on the embedded default:
# build, back up a sample directory into a local repository, list it,
# restore it, and compare.  Everything lives in a temporary directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
if [ ! -x "$build/coffer" ]; then
	cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j"$(nproc)" >/dev/null
fi
coffer=$build/coffer
work=$(mktemp -d /tmp/coffer-quickstart.XXXXXX)
trap 'rm -rf "$work"' EXIT

# a sample "volume": some text, a binary file, a symlink, a nested directory
mkdir -p "$work/volume/uploads/2026"
printf 'hello from coffer\n' > "$work/volume/README.txt"
head -c 3000000 /dev/urandom > "$work/volume/uploads/2026/photo.bin"
seq 1 200000 > "$work/volume/data.csv"
ln -s README.txt "$work/volume/link-to-readme"

# the password comes from a file (or COFFER_PASSWORD), never from the command line
umask 077
head -c 24 /dev/urandom | base64 > "$work/password"
export COFFER_PASSWORD_FILE=$work/password
export COFFER_REPOSITORY=$work/repo

set -x
"$coffer" init
"$coffer" backup "$work/volume"
"$coffer" backup "$work/volume"          # incremental: nothing new to store
"$coffer" snapshots
"$coffer" ls latest | head -n 20
"$coffer" restore latest --target "$work/restored"
"$coffer" check --read-data
diff -r "$work/volume" "$work/restored$work/volume"
{ set +x; } 2>/dev/null
echo "quickstart OK: restored files are identical to the originals"
