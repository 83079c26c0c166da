#!/usr/bin/env bash
# make-golden.sh [COFFER] - how tests/golden/repo-v1 was made.  NOT run by the
# tests: the golden repository is written once, by one version, and every
# later version must read it (tests/e2e/golden.sh).  Rerunning this replaces
# the repository and its manifest, which defeats the point; do it only when
# adding a new golden version (repo-v2, ...) next to the old one.
#
# The source tree is deterministic (fixed contents, modes and mtimes; the
# 2 MiB file is SHAKE-256 of a fixed seed, i.e. the same bytes forever), and
# lives at a fixed path because the snapshot records absolute paths.  The
# repository bytes are NOT reproducible (random master key, nonces, pack
# order): the manifest of what a restore must produce is what is checked.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
coffer=${1:-${COFFER:-$here/../../build/coffer}}
[ -x "$coffer" ] || { echo "usage: $0 PATH-TO-COFFER" >&2; exit 2; }
coffer=$(cd "$(dirname "$coffer")" && pwd)/$(basename "$coffer")

work=/tmp/coffer-golden-v1     # recorded in the snapshot: keep it
src=$work/src
rm -rf "$work"
mkdir -p "$work"

python3 - "$src" <<'PY'
import hashlib, os, sys
src = os.fsencode(sys.argv[1])
T0 = 1767182400  # 2025-12-31T12:00:00Z

def p(rel):
    return os.path.join(src, rel) if rel else src

def write(rel, data, mode=0o644):
    os.makedirs(os.path.dirname(p(rel)), exist_ok=True)
    with open(p(rel), "wb") as f:
        f.write(data)
    os.chmod(p(rel), mode)

os.makedirs(src)
readme = b"coffer golden repository, format version 1\n"
write(b"README.txt", readme)
write(b"copy-of-README.txt", readme)                      # dedup: same blob
write(b"notes/todo.txt", b"- restore me\n- byte for byte\n")
write(b"notes/empty-file", b"")                          # a file with no blobs
write(b"notes/private.txt", b"mode 0600\n", 0o600)
write(b"bin/run.sh", b"#!/bin/sh\necho golden\n", 0o755)
write(b"lines.txt", b"".join(b"line %06d of a compressible file\n" % i
                               for i in range(4000)))   # zstd-compressed blob
write(b"random.bin", hashlib.shake_256(b"coffer golden v1 seed 20260101")
      .digest(2 << 20))                                  # 2 MiB, incompressible
write(b"caf\xe9-latin1.txt", b"a name that is not UTF-8\n")  # name_b64
os.makedirs(p(b"empty-dir"))
os.symlink(b"notes/todo.txt", p(b"link-to-todo"))
os.symlink(b"caf\xe9-latin1.txt", p(b"link-\xff"))       # linktarget_b64

# fixed mtimes, children before their directory
n = 0
for root, dirs, files in os.walk(src, topdown=False):
    for name in sorted(files) + sorted(dirs):
        n += 1
        os.utime(os.path.join(root, name), (T0 + n, T0 + n), follow_symlinks=False)
os.utime(src, (T0, T0))
PY

printf 'golden\n' > "$work/password"
export COFFER_PASSWORD_FILE=$work/password TZ=UTC
unset COFFER_REPOSITORY COFFER_PASSWORD
"$coffer" -r "$work/repo" init --kdf-passes 1 --kdf-memory 64
"$coffer" -r "$work/repo" backup "$src" --time '2026-01-01 00:00:00' --host golden --tag golden

# what git can hold: no lock objects, no empty directories
rm -rf "$work/repo/locks"
find "$work/repo" -type d -empty -delete

# the manifest: every entry under the source directory as a restore must
# produce it (TYPE MODE MTIME SIZE SHA256-or-TARGET PATH; PATH and TARGET
# percent-encoded bytes, relative to the restore target)
python3 - "$src" > "$work/manifest" <<'PY'
import hashlib, os, stat, sys
from urllib.parse import quote_from_bytes as q
src = os.fsencode(sys.argv[1])
print("# tests/golden/repo-v1.manifest - what `coffer restore latest` of tests/golden/repo-v1")
print("# must produce, relative to --target.  Written by tests/golden/make-golden.sh.")
print("# TYPE MODE MTIME SIZE SHA256|LINK-TARGET PATH  (PATH/LINK-TARGET: percent-encoded bytes)")
def emit(path):
    st = os.lstat(path)
    rel = q(path.lstrip(b"/"), safe="/")
    if stat.S_ISDIR(st.st_mode):
        print("dir %04o %d - - %s" % (stat.S_IMODE(st.st_mode), st.st_mtime, rel))
        for name in sorted(os.listdir(path)):
            emit(os.path.join(path, name))
    elif stat.S_ISLNK(st.st_mode):
        print("symlink - %d - %s %s" % (st.st_mtime, q(os.readlink(path), safe="/"), rel))
    else:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print("file %04o %d %d %s %s" % (stat.S_IMODE(st.st_mode), st.st_mtime, st.st_size,
                                         digest, rel))
emit(src)
PY

rm -rf "$here/repo-v1"
cp -r "$work/repo" "$here/repo-v1"
cp "$work/manifest" "$here/repo-v1.manifest"
# the modes a git checkout gives (the backend writes 0600/0700)
chmod -R u=rwX,go=rX "$here/repo-v1"
du -sh "$here/repo-v1"
echo "wrote $here/repo-v1 and $here/repo-v1.manifest; now run tests/e2e/golden.sh"
