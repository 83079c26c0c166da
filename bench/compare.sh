#!/usr/bin/env bash
# bench/compare.sh - coffer against restic on the same data, same machine, same run.
#
# Usage: bench/compare.sh [RUNS]          (default 3 runs; medians are reported)
# Env:   BENCH_DIR   work area (default /var/tmp/coffer-bench); the corpus is
#                    generated there once by bench/make_corpus.sh (~2.1 GiB, ~75 s)
#        COFFER      coffer binary (default build/coffer, built if missing)
#        BENCH_S3    an S3 endpoint URL (e.g. http://127.0.0.1:16080) to also run
#                    coffer against S3 (restic over S3 needs TLS here; see README)
#
# For each run and each tool, alternating: (1) initial backup into a fresh
# repository, (2) backup with no change, (3) backup after one "day of changes"
# (bench/mutate.sh), (4) full restore into an empty directory.  Wall and CPU
# seconds and peak RSS come from /usr/bin/time -v; repository bytes from du.
# Needs: restic, time (Debian packages), python3.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
B=${BENCH_DIR:-/var/tmp/coffer-bench}
COFFER=${COFFER:-$here/build/coffer}
mkdir -p "$B"
if [ ! -x "$COFFER" ]; then
	cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$here/build" -j"$(nproc)" >/dev/null
fi
command -v restic >/dev/null || { echo "restic is not installed (apt-get install restic)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
if [ ! -d "$B/corpus" ]; then
	echo "generating the corpus in $B/corpus (once)..." >&2
	bash "$here/bench/make_corpus.sh" "$B/corpus" 42 >&2
fi
echo pw > "$B/pw"
export COFFER_PASSWORD_FILE=$B/pw RESTIC_PASSWORD_FILE=$B/pw RESTIC_CACHE_DIR=$B/restic-cache
results=$B/results.tsv
: > "$results"

# measure TOOL STEP CMD...: appends "tool step wall cpu rss_kib" to results
measure() {
	local tool=$1 step=$2; shift 2
	local log=$B/time.log
	/usr/bin/time -v -o "$log" "$@" > "$B/last.out" 2> "$B/last.err" || {
		echo "FAILED: $tool $step: $*" >&2; cat "$B/last.err" >&2; exit 1; }
	python3 - "$log" "$tool" "$step" >> "$results" <<'PY'
import sys, re
t = open(sys.argv[1]).read()
def g(k):
    return re.search(re.escape(k) + r":\s*(.+)", t).group(1).strip()
w = g("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
cpu = float(g("User time (seconds)")) + float(g("System time (seconds)"))
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{wall:.3f}\t{cpu:.3f}\t{g('Maximum resident set size (kbytes)')}")
PY
}
repo_bytes() { du -sb "$1" | cut -f1; }

for run in $(seq 1 "$RUNS"); do
	echo "run $run/$RUNS: copying the corpus..." >&2
	rm -rf "$B/src" "$B/r-coffer" "$B/r-restic" "$B/out-coffer" "$B/out-restic" "$B/restic-cache"
	cp -a "$B/corpus" "$B/src"
	sync
	"$COFFER" -r "$B/r-coffer" init -q --kdf-passes 1 --kdf-memory 8192 >/dev/null
	restic -r "$B/r-restic" init >/dev/null 2>&1
	for step in initial nochange changed; do
		[ "$step" = changed ] && bash "$here/bench/mutate.sh" "$B/src" 1 >/dev/null 2>&1
		before_c=$(repo_bytes "$B/r-coffer"); before_r=$(repo_bytes "$B/r-restic")
		# alternate which tool goes first, so neither always gets the warmer cache
		if [ $((run % 2)) = 1 ]; then
			measure coffer "$step" "$COFFER" -r "$B/r-coffer" backup -q "$B/src"
			measure restic "$step" restic -r "$B/r-restic" backup -q "$B/src"
		else
			measure restic "$step" restic -r "$B/r-restic" backup -q "$B/src"
			measure coffer "$step" "$COFFER" -r "$B/r-coffer" backup -q "$B/src"
		fi
		printf 'coffer\t%s-added\t%s\n' "$step" $(( $(repo_bytes "$B/r-coffer") - before_c )) >> "$results"
		printf 'restic\t%s-added\t%s\n' "$step" $(( $(repo_bytes "$B/r-restic") - before_r )) >> "$results"
	done
	printf 'coffer\trepo\t%s\n' "$(repo_bytes "$B/r-coffer")" >> "$results"
	printf 'restic\trepo\t%s\n' "$(repo_bytes "$B/r-restic")" >> "$results"
	measure coffer restore "$COFFER" -r "$B/r-coffer" restore -q latest --target "$B/out-coffer"
	measure restic restore restic -r "$B/r-restic" restore -q latest --target "$B/out-restic"
	diff -rq "$B/src" "$B/out-coffer$B/src" >/dev/null || { echo "coffer restore differs!" >&2; exit 1; }
done

chunker=$("$here/build/bench_chunker" 256 3 2>/dev/null | grep -Eo '[0-9.]+ (MB|GB)/s' | tail -1 || true)
zstd_speed=$(zstd -b3 -i2 "$B/corpus/db/dump.sql" 2>&1 | grep -Eo '[0-9.]+ MB/s' | head -1 || true)
src_bytes=$(du -sb "$B/corpus" | cut -f1)

python3 - "$results" "$src_bytes" "$(nproc)" "$chunker" "$zstd_speed" <<'PY'
import sys, statistics, collections, platform
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
src = int(sys.argv[2]); cores = sys.argv[3]
t = collections.defaultdict(list)
for r in rows:
    t[(r[0], r[1])].append([float(x) for x in r[2:]])
def med(tool, step, i):
    v = [x[i] for x in t[(tool, step)]]
    return statistics.median(v) if v else float("nan")
print(f"coffer vs restic {sys.argv[1]}: corpus {src/2**30:.2f} GiB, {cores} cores, medians of {len(t[('coffer','initial')])} runs")
print(f"{'step':<10} {'':>1} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8} {'added MiB':>10}  | ratio coffer/restic: wall  CPU   RSS  size")
for step in ["initial", "nochange", "changed", "restore"]:
    line = {}
    for tool in ["coffer", "restic"]:
        w, c, rss = med(tool, step, 0), med(tool, step, 1), med(tool, step, 2) / 1024
        add = med(tool, step + "-added", 0) / 2**20 if (tool, step + "-added") in t else float("nan")
        line[tool] = (w, c, rss, add)
        print(f"{step:<10} {tool[0]} {w:8.2f} {c:8.2f} {rss:8.0f} {add:10.1f}")
    (cw, cc, cr, ca), (rw, rc, rr, ra) = line["coffer"], line["restic"]
    sz = f"{ca/ra:5.2f}" if ra == ra and ra >= 1 else "    -"  # ratios of (near) nothing mean nothing
    print(f"{'':<51}  | {'':>19}{cw/rw:5.2f} {cc/rc:5.2f} {cr/rr:5.2f} {sz}")
cr, rr = med("coffer", "repo", 0), med("restic", "repo", 0)
print(f"repository after 3 backups: coffer {cr/2**20:.0f} MiB, restic {rr/2**20:.0f} MiB (ratio {cr/rr:.2f})")
iw = med("coffer", "initial", 0)
print(f"coffer initial backup: {src/iw/1e6:.0f} MB/s end to end; chunker on one core: {sys.argv[4] or '?'}; "
      f"zstd -3 on one core: {sys.argv[5] or '?'} (x {cores} cores)")
print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
PY
