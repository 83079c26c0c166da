#!/usr/bin/env bash
# bench/ab.sh - two coffer binaries against each other, alternating, on the
# same data: is a change faster?  (compare.sh is coffer against restic.)
#
# Usage: bench/ab.sh backup|restore PAIRS BIN_A BIN_B [SRC]
#   backup    initial backups of SRC into a fresh local repository each time
#   restore   one repository (made once by BIN_A from SRC; BIN_B must read its
#             format), then full restores;
#             each onto a freshly made ext4 on a loop device (needs root and
#             losetup/mkfs.ext4), because a tree deleted just before makes
#             ext4 search its recently freed inodes when it creates files, and
#             on a file system mounted with `discard` the deletion itself goes
#             on in the background: both slowed the next restore by seconds.
#   PAIRS     runs of each binary; the order alternates (A B, B A, A B, ...)
#   SRC       what to back up (default: the benchmark corpus, made if missing)
# Env: BENCH_DIR (default /var/tmp/coffer-bench), AB_DIR work area (default
#      $BENCH_DIR/ab, removed at the end), AB_FS_SIZE loop file system size
#      (default 16G; sparse), AB_REPO a store to put the repositories in
#      instead of a local directory (e.g. s3:http://127.0.0.1:16080/bucket:
#      each backup run gets a fresh prefix beneath it, the restore one; the
#      S3 credentials come from the usual AWS_* variables).
# Prints each run (wall, user and system seconds, peak RSS) and the median wall
# time of each binary.  Single runs on a shared VM vary by 10-20%: use 3 pairs
# or more and look at the spread before believing a difference of a few percent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage() { echo "usage: bench/ab.sh backup|restore PAIRS BIN_A BIN_B [SRC]" >&2; exit 2; }
[ $# -ge 4 ] || usage
mode=$1 pairs=$2 a=$3 b=$4
case $mode in backup | restore) ;; *) usage ;; esac
case $pairs in [1-9] | [1-9][0-9]) ;; *) usage ;; esac
for x in "$a" "$b"; do [ -x "$x" ] || { echo "bench/ab.sh: $x is not an executable" >&2; exit 2; }; done
a=$(realpath "$a") b=$(realpath "$b")
B=${BENCH_DIR:-/var/tmp/coffer-bench}
W=${AB_DIR:-$B/ab}
src=${5:-$B/corpus}
if [ -z "${5:-}" ] && [ ! -d "$src" ]; then
	echo "generating the corpus in $src (once)..." >&2
	bash "$here/bench/make_corpus.sh" "$B/corpus.tmp" 42 >&2
	mv "$B/corpus.tmp" "$B/corpus"
fi
[ -d "$src" ] || { echo "bench/ab.sh: $src is not a directory" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/ab.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }

rm -rf "$W"
mkdir -p "$W"
printf 'ab\n' > "$W/pw"
export COFFER_PASSWORD_FILE=$W/pw COFFER_CACHE_DIR=$W/cache
loop='' mnt=$W/mnt
cleanup()
{
	if [ -n "$loop" ]; then
		umount "$mnt" 2>/dev/null || true
		losetup -d "$loop" 2>/dev/null || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT

nrepo=0
repo=$W/repo
next_repo()
{
	nrepo=$((nrepo + 1))
	if [ -n "${AB_REPO:-}" ]; then repo=$AB_REPO/ab-$$-$nrepo; else rm -rf "$W/repo"; repo=$W/repo; fi
}

fresh_fs()
{
	umount "$mnt" 2>/dev/null || true
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$loop"
	mount "$loop" "$mnt"
}

if [ "$mode" = restore ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/ab.sh restore: needs root (a loop device per run)" >&2; exit 1; }
	next_repo
	"$a" -r "$repo" init --kdf-passes 1 --kdf-memory 64 -q >/dev/null
	"$a" -r "$repo" backup -q "$src"
	truncate -s "${AB_FS_SIZE:-16G}" "$W/fs.img"
	loop=$(losetup --direct-io=on -f --show "$W/fs.img")
	# the loop device throttles writeback as the disk under it does: a new
	# loop device's writeback-throttling target is 2 ms, where this VM's disk
	# has 75 ms, and the 2 ms made restores sleep seconds in wbt_wait that a
	# restore onto the disk itself (compare.sh) does not
	dev=$(basename "$(df --output=source "$W" | tail -1)")
	q=/sys/class/block/$dev/queue
	[ -d "$q" ] || q=/sys/class/block/$dev/../queue
	if [ -r "$q/wbt_lat_usec" ] && [ -w "/sys/block/$(basename "$loop")/queue/wbt_lat_usec" ]; then
		cat "$q/wbt_lat_usec" > "/sys/block/$(basename "$loop")/queue/wbt_lat_usec"
	fi
	mkdir -p "$mnt"
fi

run()
{
	local bin=$1 tag=$2 wall user sys rss
	if [ "$mode" = backup ]; then
		rm -rf "$W/cache"
		next_repo
		"$bin" -r "$repo" init --kdf-passes 1 --kdf-memory 64 -q >/dev/null
		sync
		/usr/bin/time -o "$W/time" -f '%e %U %S %M' "$bin" -r "$repo" backup -q "$src" >/dev/null
	else
		fresh_fs
		sync
		/usr/bin/time -o "$W/time" -f '%e %U %S %M' "$bin" -r "$repo" restore -q latest --target "$mnt/t" >/dev/null
		diff -r "$src" "$mnt/t$(realpath "$src")" >/dev/null ||
			{ echo "bench/ab.sh: $tag restored something else than $src" >&2; exit 1; }
	fi
	read -r wall user sys rss < "$W/time"
	printf '%s %-40s wall %6.2f s  user %6.2f s  sys %6.2f s  RSS %4d MiB\n' "$tag" "$bin" "$wall" "$user" "$sys" $((rss / 1024))
	echo "$tag $wall" >> "$W/walls"
}

for i in $(seq "$pairs"); do
	if [ $((i % 2)) = 1 ]; then run "$a" A; run "$b" B; else run "$b" B; run "$a" A; fi
done
for tag in A B; do
	awk -v t=$tag '$1 == t {print $2}' "$W/walls" | sort -n |
		awk -v t=$tag '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
			printf "%s median wall %.2f s (%d runs, %.2f-%.2f)\n", t, m, NR, v[1], v[NR]}'
done
