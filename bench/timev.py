#!/usr/bin/env python3
"""timev.py LOG: print "WALL CPU RSS_KIB" from a /usr/bin/time -v log.

WALL and CPU (user + system) in seconds with three decimals, RSS_KIB the
peak resident set size in KiB.  Used by compare.sh and scale.sh."""
import re
import sys

t = open(sys.argv[1]).read()


def g(k):
    return re.search(re.escape(k) + r":\s*(.+)", t).group(1).strip()


w = g("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
cpu = float(g("User time (seconds)")) + float(g("System time (seconds)"))
print(f"{wall:.3f} {cpu:.3f} {g('Maximum resident set size (kbytes)')}")
