#!/bin/bash
# restore_pagecache.sh - a restore leaves what it wrote on the disk, not in
# the page cache (restore/write.c, "written files leave the page cache"):
# a restore of 170 MiB in big and small files comes back equal, and
# afterwards fincore finds almost none of the restored pages cached, where an
# ordinary write-and-close leaves every one of them there.  Needs fincore
# (util-linux) and a target that is not tmpfs (where the cache is the data).
. "$(dirname "$0")/lib.sh"
e2e_setup

command -v fincore >/dev/null || skip "fincore (util-linux) is not installed"
[ "$(stat -f -c %T "$T")" = tmpfs ] && skip "$T is on tmpfs"

S=$T/src
mkdir -p "$S/big" "$S/small"
for i in 1 2 3 4; do randfile "$S/big/f$i" $((20 * 1024 * 1024 + i * 4097)); done
# past 16 MiB a file leaves the cache while it is written, its first 32 MiB
# once the writes are that far along (write_behind): this one goes that way
randfile "$S/big/f72" $((72 * 1024 * 1024 + 123))
for i in $(seq 1 300); do randfile "$S/small/s$i" $((i * 677)); done
: > "$S/small/empty"
init_repo "$T/repo"
cof -r "$T/repo" backup "$S"

R=$T/restore
cof -r "$T/repo" restore latest --target "$R"

# resident bytes of the restored files, against their size
read -r res total < <(find "$R$S" -type f -size +0 -print0 |
	xargs -0 fincore --bytes --noheadings --output RES,SIZE |
	awk '{r += $1; t += $2} END {print r + 0, t + 0}')
note "restored $total bytes, $res of them in the page cache afterwards"
[ "$total" -gt $((80 * 1024 * 1024)) ] || fail "fincore saw only $total bytes of restored files"
# a few pages may come back (readahead of a neighbour, metadata): allow 5%
assert_le "$res" $((total / 20)) "restored bytes left in the page cache"
# (compared only now: comparing reads them back into the cache)
compare_trees "$S" "$R$S"
e2e_done
