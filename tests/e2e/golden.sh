#!/usr/bin/env bash
# golden.sh - this coffer still reads the repository that version 1 wrote,
# and writes formats 2 and 3 as doc/repo-format.md says.
#
# tests/golden/repo-v1 was written once by tests/golden/make-golden.sh and is
# never rewritten: it is the proof that the format in doc/repo-format.md is
# still read.  The test works on a copy shaped like a git checkout (no empty
# directories: no data/xx fan-out dirs, no locks/), and checks that
#   - `check --read-data` passes (every pack hashes to its name, every blob
#     opens, decompresses and hashes to its id),
#   - `snapshots --json` shows the one snapshot with host golden, tag golden,
#     time 2026-01-01T00:00:00Z, the recorded path and the stored id,
#   - `restore latest` produces exactly tests/golden/repo-v1.manifest: every
#     file's SHA-256, size, mode and mtime, every symlink's target, every
#     directory (the empty one too), names that are not UTF-8, nothing extra,
#   - a wrong password is still refused as such (exit 12).
# If this fails after a change, the change broke compatibility: fix the code,
# never the golden files.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
e2e_setup

src=${COFFER_SOURCE_DIR:-$here/../..}
golden=$src/tests/golden/repo-v1
manifest=$src/tests/golden/repo-v1.manifest
[ -f "$golden/config" ] || fail "no golden repository at $golden"
[ -f "$manifest" ] || fail "no manifest at $manifest"

golden_sum() { (cd "$golden" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }
golden_sum=$(golden_sum)

repo=$T/repo
cp -r "$golden" "$repo" || fail "copy the golden repository"
# as git checks it out, whatever the working tree holds
find "$repo" -type d -empty -delete
[ ! -d "$repo/locks" ] || rm -rf "$repo/locks"
printf 'golden\n' > "$T/golden-pw"
export COFFER_PASSWORD_FILE=$T/golden-pw

cof -r "$repo" check --read-data

cof -r "$repo" --json snapshots
cp "$T/out" "$T/snaps.json"
snap_file=$(ls "$repo/snapshots")
"$PY" - "$T/snaps.json" "$snap_file" <<'PY' || fail "snapshots --json does not show the golden snapshot"
import json, sys
snaps = json.load(open(sys.argv[1]))
assert isinstance(snaps, list) and len(snaps) == 1, snaps
s = snaps[0]
def want(k, v):
    if s.get(k) != v:
        print("%s: expected %r, got %r" % (k, v, s.get(k)))
        sys.exit(1)
want("hostname", "golden")
want("tags", ["golden"])
want("paths", ["/tmp/coffer-golden-v1/src"])
want("id", sys.argv[2])
want("short_id", sys.argv[2][:8])
if not s.get("time", "").startswith("2026-01-01T00:00:00"):
    print("time: expected 2026-01-01T00:00:00..., got %r" % s.get("time"))
    sys.exit(1)
if not s["time"].endswith("Z"):
    print("time is not UTC: %r" % s["time"])
    sys.exit(1)
PY

# the filters select it too
cof -r "$repo" --json snapshots --host golden --tag golden
assert_eq 1 "$(json_field "$T/out" 'len(j)')" "snapshots --host golden --tag golden"
cof -r "$repo" --json snapshots --host nobody
assert_eq 0 "$(json_field "$T/out" 'len(j)')" "snapshots --host nobody"

cof -r "$repo" restore latest --target "$T/restore"
"$PY" - "$manifest" "$T/restore" <<'PY' || fail "the restored tree does not match repo-v1.manifest"
import hashlib, os, stat, sys
from urllib.parse import unquote_to_bytes as uq
manifest, target = sys.argv[1], os.fsencode(sys.argv[2])
want = {}
for line in open(manifest, encoding="ascii"):
    if line.startswith("#") or not line.strip():
        continue
    typ, mode, mtime, size, digest, path = line.split()
    want[uq(path)] = (typ, mode, int(mtime), size, digest)
top = min(want, key=len)
ancestors = set()
a = top
while b"/" in a:
    a = a.rsplit(b"/", 1)[0]
    ancestors.add(a)
bad = 0
def problem(msg, *args):
    global bad
    bad += 1
    print(msg % args)
seen = set()
for root, dirs, files in os.walk(target):
    for name in dirs + files:
        full = os.path.join(root, name)
        rel = os.path.relpath(full, target)
        seen.add(rel)
        if rel in ancestors:
            if not os.path.isdir(full) or os.path.islink(full):
                problem("%r: expected a directory", rel)
            continue
        if rel not in want:
            problem("%r: restored but not in the manifest", rel)
            continue
        typ, mode, mtime, size, digest = want[rel]
        st = os.lstat(full)
        if typ == "dir":
            ok = stat.S_ISDIR(st.st_mode)
        elif typ == "symlink":
            ok = stat.S_ISLNK(st.st_mode)
        else:
            ok = stat.S_ISREG(st.st_mode)
        if not ok:
            problem("%r: expected a %s, got mode %o", rel, typ, st.st_mode)
            continue
        if mode != "-" and "%04o" % stat.S_IMODE(st.st_mode) != mode:
            problem("%r: mode %04o, expected %s", rel, stat.S_IMODE(st.st_mode), mode)
        if int(st.st_mtime) != mtime:
            problem("%r: mtime %d, expected %d", rel, int(st.st_mtime), mtime)
        if typ == "symlink" and os.readlink(full) != uq(digest):
            problem("%r: link target %r, expected %r", rel, os.readlink(full), uq(digest))
        if typ == "file":
            if st.st_size != int(size):
                problem("%r: size %d, expected %s", rel, st.st_size, size)
            with open(full, "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
            if got != digest:
                problem("%r: sha256 %s, expected %s", rel, got, digest)
for rel in sorted(set(want) - seen):
    problem("%r: in the manifest but not restored", rel)
if bad:
    print("%d differences" % bad)
    sys.exit(1)
print("restored tree matches the manifest: %d entries" % len(want))
PY

# writing into it keeps version 1: a new backup's packs, index and snapshot
# are named by BLAKE2b-256 as format 1 says (check --read-data compares
# every pack's name with its bytes), and the old snapshot is still restored
mkdir -p "$T/more"
randfile "$T/more/big.bin" $((10 << 20))
echo small > "$T/more/small.txt"
cof -r "$repo" backup "$T/more"
cof -r "$repo" check --read-data
for p in "$repo"/data/*/*; do
	n=$(basename "$p")
	[ "$(b2sum -l 256 "$p" | cut -c1-64)" = "$n" ] || fail "format-1 pack $n is not named by its BLAKE2b-256"
done
cof -r "$repo" restore latest --target "$T/more-restore"
cmp "$T/more/big.bin" "$T/more-restore$T/more/big.bin" || fail "restore of the new backup in the v1 repository"

# sha256_named REPO: its snapshots, index files and key files are named by
# the SHA-256 of their bytes (formats 2 and 3)
sha256_named()
{
	local s
	for s in "$1"/snapshots/* "$1"/index/* "$1"/keys/*; do
		[ "$(sha256sum "$s" | cut -c1-64)" = "$(basename "$s")" ] || fail "$s is not named by its SHA-256"
	done
}

# format 2 (init --repo-version 2): every object, packs too, named by the
# SHA-256 of all its bytes
init_repo "$T/v2" --repo-version 2
cof -r "$T/v2" backup "$T/more"
cof -r "$T/v2" check --read-data
npacks=0
for p in "$T"/v2/data/*/*; do
	n=$(basename "$p")
	[ "$(sha256sum "$p" | cut -c1-64)" = "$n" ] || fail "format-2 pack $n is not named by its SHA-256"
	npacks=$((npacks + 1))
done
[ "$npacks" -ge 2 ] || fail "expected packs in the format-2 repository, found $npacks"
sha256_named "$T/v2"
cof -r "$T/v2" restore latest --target "$T/v2-restore"
cmp "$T/more/big.bin" "$T/v2-restore$T/more/big.bin" || fail "restore from the format-2 repository"

# a new repository is format 3: a pack is named by the SHA-256 of its sealed
# header and 4-byte trailer (the header's length), everything else as in 2
init_repo "$T/v3"
cof -r "$T/v3" backup "$T/more"
cof -r "$T/v3" check --read-data
npacks=0
for p in "$T"/v3/data/*/*; do
	n=$(basename "$p")
	got=$("$PY" -c 'import hashlib,struct,sys
b = open(sys.argv[1], "rb").read()
hl = struct.unpack("<I", b[-4:])[0]
print(hashlib.sha256(b[-4 - hl:]).hexdigest())' "$p")
	[ "$got" = "$n" ] || fail "format-3 pack $n is not named by the SHA-256 of its header and trailer"
	[ "$(sha256sum "$p" | cut -c1-64)" != "$n" ] || fail "format-3 pack $n is named by the hash of all its bytes"
	npacks=$((npacks + 1))
done
[ "$npacks" -ge 2 ] || fail "expected packs in the new repository, found $npacks"
sha256_named "$T/v3"
expect_exit 1 "$COFFER" -r "$T/v4" init --repo-version 4
assert_one_line_err "init --repo-version 4"

# the key file format still refuses a wrong password as such
printf 'not golden\n' > "$T/wrong-pw"
expect_exit 12 env COFFER_PASSWORD_FILE="$T/wrong-pw" "$COFFER" -r "$repo" snapshots

# the test worked on a copy: the golden files themselves are untouched
assert_eq "$golden_sum" "$(golden_sum)" "checksum of the golden files"
exit 0
