#!/usr/bin/env python3
"""mutate_tree.py - a deterministic "day of changes" for any directory tree.

bench/mutate.sh changes the generated corpus, whose layout it knows; this
does the same kind of change to a tree of real files (bench/compare.sh
--real): of the regular files, sorted by path and drawn with
random.Random("SEED:tree:DAY"),
  - 1% are modified: 40% get 200 B - 4 KiB appended, 40% have 16 B - 4 KiB
    overwritten in place at a random offset, 20% are rewritten whole with new
    bytes (size +-20%);
  - 0.1% are deleted, and as many again plus 0.1% are added (1-64 KiB, next
    to a modified file);
  - every touched file gets mtime 2024-06-01 + DAY days.
Usage: mutate_tree.py DIR [DAY] [SEED]     (DAY default 1, SEED default 42)
Not idempotent: running a day twice changes the tree twice.
"""
import os
import random
import sys

KiB = 1024


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-2])
    root, day = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 42
    r = random.Random(f"{seed}:tree:{day}")
    t = 1717200000 + day * 86400
    files = []
    for d, dns, fns in os.walk(root):
        dns.sort()
        for n in sorted(fns):
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    if not files:
        sys.exit(f"mutate_tree.py: no regular file under {root}")
    r.shuffle(files)
    nmod = max(1, len(files) // 100)
    ndel = max(1, len(files) // 1000)
    modified, deleted = files[:nmod], files[nmod:nmod + ndel]
    for p in modified:
        size = os.path.getsize(p)
        kind = r.random()
        if kind < 0.4:
            with open(p, "ab") as f:
                f.write(r.randbytes(r.randint(200, 4 * KiB)))
        elif kind < 0.8 and size > 16:
            n = min(size, r.randint(16, 4 * KiB))
            with open(p, "r+b") as f:
                f.seek(r.randint(0, size - n))
                f.write(r.randbytes(n))
        else:
            with open(p, "wb") as f:
                f.write(r.randbytes(max(1, int(size * r.uniform(0.8, 1.2)))))
        os.utime(p, (t, t))
    for p in deleted:
        os.unlink(p)
    for i in range(2 * ndel):
        d = os.path.dirname(r.choice(modified))
        p = os.path.join(d, f"coffer-bench-new-{day}-{i}")
        with open(p, "wb") as f:
            f.write(r.randbytes(r.randint(1, 64) * KiB))
        os.utime(p, (t, t))
    print(f"{len(modified)} modified, {len(deleted)} deleted, {2 * ndel} added of {len(files)} files")


if __name__ == "__main__":
    main()
