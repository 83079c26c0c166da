#!/usr/bin/env bash
# bench/scale.sh - coffer at scale: many small files, and one huge stream.
#
# Usage: bench/scale.sh [files] [stream] [--files N] [--stream SIZE[,SIZE...]]
#                       [--restic] [--verify] [--keep]
#   files           (a) N small files (default 1,000,000) made by gen_files in
#                   1000-file directories (64-2111 random bytes each, ~4 GiB on
#                   an ext4 disk, N inodes): first backup into a new local
#                   repository, then a backup with no change.  Targets: peak RSS
#                   < 500 MiB, no-change run < 10% of the first run's wall time.
#   stream          (b) one file of SIZE (default 50G) generated on the fly by
#                   gen_stream (incompressible, nothing repeats) and backed up
#                   with --stdin-from-command: throughput and peak RSS.  Several
#                   sizes (e.g. 5G,50G) show whether memory grows with the size.
#                   The repository holds SIZE bytes while it runs and is deleted
#                   right after; the script refuses to start without SIZE + 5 GiB
#                   free.  Nothing else touches the disk.
#   --stream-period P  make the stream repeat every P bytes (e.g. 4G), so the
#                   repository holds about P bytes, not SIZE (deduplication);
#                   the first P bytes go through the whole pipeline, the rest
#                   through reading, chunking, hashing and the index lookup
#   (default: both)
#   --restic        also run restic 0.14 on the small files (same steps)
#   --verify        (stream) read the file back with `coffer dump` and compare it
#                   with a second run of the generator (doubles the time)
#   --keep          keep the generated tree between runs (it is reused if complete)
# Env:  SCALE_DIR   work area (default /var/tmp/coffer-scale)
#       COFFER      coffer binary (default build/coffer, built if missing)
# Prints one line per measured step; exit 1 if a command fails or a restored
# stream differs, 0 otherwise (a missed target is printed as MISSED, not an
# error: this is a benchmark, not a test).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
do_files=0 do_stream=0 do_restic=0 verify=0 keep=0
N=1000000 SIZES=50G PERIOD=
while [ $# -gt 0 ]; do
	case $1 in
	files) do_files=1 ;;
	stream) do_stream=1 ;;
	--files) N=${2:?--files needs a count}; shift ;;
	--stream) SIZES=${2:?--stream needs a size such as 50G}; shift ;;
	--stream-period) PERIOD=${2:?--stream-period needs a size such as 4G}; shift ;;
	--restic) do_restic=1 ;;
	--verify) verify=1 ;;
	--keep) keep=1 ;;
	*) echo "scale.sh: unknown argument '$1' (see the head of bench/scale.sh)" >&2; exit 2 ;;
	esac
	shift
done
[ $do_files = 0 ] && [ $do_stream = 0 ] && do_files=1 do_stream=1
case $N in '' | *[!0-9]*) echo "scale.sh: --files wants a number, not '$N'" >&2; exit 2 ;; esac
S=${SCALE_DIR:-/var/tmp/coffer-scale}
COFFER=${COFFER:-$here/build/coffer}
mkdir -p "$S"
S=$(cd "$S" && pwd)
if [ ! -x "$COFFER" ] || [ ! -x "$here/build/gen_files" ] || [ ! -x "$here/build/gen_stream" ]; then
	cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$here/build" -j"$(nproc)" >/dev/null
fi
[ -x /usr/bin/time ] || { echo "scale.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
echo pw > "$S/pw"
export COFFER_PASSWORD_FILE=$S/pw RESTIC_PASSWORD_FILE=$S/pw RESTIC_CACHE_DIR=$S/restic-cache

# measure NAME CMD...: runs CMD under /usr/bin/time -v; sets WALL (s), CPU (s), RSS (MiB)
measure() {
	local name=$1; shift
	/usr/bin/time -v -o "$S/time.log" "$@" > "$S/last.out" 2> "$S/last.err" || {
		echo "scale.sh: FAILED: $name: $*" >&2; tail -n 20 "$S/last.err" >&2; exit 1; }
	local rss_kib
	read -r WALL CPU rss_kib < <(python3 "$here/bench/timev.py" "$S/time.log")
	RSS=$(( (rss_kib + 512) / 1024 ))
	printf '%-34s wall %8.2f s  CPU %8.2f s  peak RSS %6d MiB\n' "$name" "$WALL" "$CPU" "$RSS"
}
verdict() { # verdict WHAT OK(0/1) DETAIL
	if [ "$2" = 1 ]; then echo "  target $1: met ($3)"; else echo "  target $1: MISSED ($3)"; fi
}

echo "coffer scale benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
	"$(lscpu | sed -n 's/^Model name: *//p')"

if [ $do_files = 1 ]; then
	tree=$S/files-$N
	if [ ! -f "$tree.done" ]; then
		rm -rf "$tree"
		free_inodes=$(df --output=iavail "$S" | tail -1)
		if [ "$free_inodes" -lt $((N + N / 100 + 10000)) ]; then
			echo "scale.sh: $S has $free_inodes free inodes, $N files need more" >&2; exit 1
		fi
		measure "generate $N files" "$here/build/gen_files" "$tree" "$N"
		touch "$tree.done"
	fi
	echo "tree: $N files in $(ls "$tree" | wc -l) directories, $(du -sh --apparent-size "$tree" | cut -f1)B of data," \
		"$(du -sh "$tree" | cut -f1)B on disk"
	rm -rf "$S/r-coffer"
	"$COFFER" -r "$S/r-coffer" init -q --kdf-passes 1 --kdf-memory 8192 > /dev/null
	sync
	measure "coffer first backup" "$COFFER" -r "$S/r-coffer" backup -q "$tree"
	w1=$WALL r1=$RSS
	measure "coffer no-change backup" "$COFFER" -r "$S/r-coffer" backup -q "$tree"
	w2=$WALL r2=$RSS
	echo "  coffer repository: $(du -sh "$S/r-coffer" | cut -f1)B"
	pct=$(python3 -c "print(f'{100 * $w2 / $w1:.1f}')")
	verdict "peak RSS < 500 MiB" $([ "$r1" -lt 500 ] && [ "$r2" -lt 500 ] && echo 1 || echo 0) \
		"first run $r1 MiB, no-change run $r2 MiB"
	verdict "no-change run < 10% of the first" $(python3 -c "print(int($w2 < 0.1 * $w1))") \
		"$w2 s of $w1 s = $pct%"
	rm -rf "$S/r-coffer"
	if [ $do_restic = 1 ]; then
		rm -rf "$S/r-restic" "$S/restic-cache"
		restic -r "$S/r-restic" init > /dev/null 2>&1
		measure "restic first backup" restic -r "$S/r-restic" backup -q "$tree"
		rw1=$WALL
		measure "restic no-change backup" restic -r "$S/r-restic" backup -q "$tree"
		echo "  restic no-change run: $(python3 -c "print(f'{100 * $WALL / $rw1:.1f}')")% of its first; coffer/restic first run wall $(python3 -c "print(f'{$w1 / $rw1:.2f}')")"
		rm -rf "$S/r-restic" "$S/restic-cache"
	fi
	[ $keep = 1 ] || rm -rf "$tree" "$tree.done"
fi

if [ $do_stream = 1 ]; then
	for size in ${SIZES//,/ }; do
		bytes=$(numfmt --from=iec "$size" 2>/dev/null) ||
			{ echo "scale.sh: bad size '$size' (e.g. 50G)" >&2; exit 2; }
		stored=$bytes gen_args=$bytes label=$size
		if [ -n "$PERIOD" ]; then
			pbytes=$(numfmt --from=iec "$PERIOD" 2>/dev/null) ||
				{ echo "scale.sh: bad period '$PERIOD' (e.g. 4G)" >&2; exit 2; }
			[ "$pbytes" -lt "$bytes" ] && stored=$pbytes
			gen_args="$bytes 42 $pbytes" label="$size (repeating every $PERIOD)"
		fi
		avail=$(( $(df --output=avail -B1 "$S" | tail -1) ))
		if [ "$avail" -lt $((stored + (5 << 30))) ]; then
			echo "scale.sh: a $label stream needs $(numfmt --to=iec $stored) + 5 GiB free in $S (the repository holds it); only $(numfmt --to=iec "$avail") free" >&2
			exit 1
		fi
		rm -rf "$S/r-stream"
		"$COFFER" -r "$S/r-stream" init -q --kdf-passes 1 --kdf-memory 8192 > /dev/null
		measure "coffer backup of a $label stream" "$COFFER" -r "$S/r-stream" backup -q \
			--stdin-from-command "'$here/build/gen_stream' $gen_args" --stdin-filename big.bin
		echo "  $(python3 -c "print(f'{$bytes / $WALL / 1e6:.0f}')") MB/s end to end, repository $(du -sh "$S/r-stream" | cut -f1)B, peak RSS $RSS MiB"
		if [ $verify = 1 ]; then
			measure "coffer dump and compare ($size)" bash -c "set -o pipefail;
				'$COFFER' -r '$S/r-stream' dump latest big.bin | cmp - <('$here/build/gen_stream' $gen_args)"
			echo "  restored bytes equal the generated bytes; $(python3 -c "print(f'{$bytes / $WALL / 1e6:.0f}')") MB/s"
		fi
		rm -rf "$S/r-stream"
	done
fi
