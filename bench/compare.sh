#!/usr/bin/env bash
# bench/compare.sh - coffer against restic on the same data, same machine, same run.
#
# Usage: bench/compare.sh [RUNS] [--local] [--s3] [--no-http] [--real] [--link MS,MBIT]
#   RUNS        runs of every step (default 3); medians are reported
#   --local     local repositories only          (default: local and S3)
#   --s3        S3 repositories only
#   --no-http   over S3, skip the extra coffer-over-plain-http row
#   --real      the corpus is real files instead of the generated one: a copy
#               of this machine's /usr/lib/x86_64-linux-gnu, /usr/share/doc and
#               /usr/include (~1.3 GiB, ~19,000 files; BENCH_DIR/corpus-real,
#               made once), changed by bench/mutate_tree.py; results go to
#               BENCH_DIR/results-real.tsv
#   --link MS,MBIT  over S3, both tools reach the server through
#               bench/linkem.py: MS ms round trip, MBIT Mbit/s each way (e.g.
#               --link 30,200, a store across the Internet); the table then
#               has a "link s" column, the step's bytes over the link / MBIT
#               (the bandwidth bound), and the proxy's CPU counts as the
#               servers'; results go to BENCH_DIR/results[-real]-link.tsv
#   --report    run nothing, print the table again from BENCH_DIR/results.tsv
#               (the ceilings below it are measured again)
# Env:   BENCH_DIR   work area (default /var/tmp/coffer-bench); the corpus is
#                    generated there once by bench/make_corpus.sh (~2.1 GiB, ~75 s)
#        COFFER      coffer binary (default build/coffer, built if missing)
#        SWIFT_PORT  port of the S3 server (default 16080); the servers use
#                    SWIFT_PORT-70..SWIFT_PORT+1, the TLS proxy SWIFT_TLS_PORT
#                    (default SWIFT_PORT+2)
#
# For each run and each tool, alternating which goes first: (1) initial backup
# into a fresh repository, (2) backup with no change, (3) backup after one "day
# of changes" (bench/mutate.sh), (4) full restore into an empty directory.  Wall
# and CPU seconds and peak RSS come from /usr/bin/time -v; repository bytes from
# du (local) or the Swift container's byte count (S3).  Two more columns:
# "+sync", the wall time plus that of a `sync` right after the command (a tool
# that leaves its writes dirty in the page cache finishes sooner than one that
# waits for them to reach the disk: coffer's restore does, restic's does not),
# and "srv CPU", the CPU seconds the S3 servers spent during the command (they
# run on the same cores as the tools: on S3 the wall time can be no less than
# (the tool's CPU + the servers') / cores, printed under the table).
#
# S3: OpenStack Swift with s3api on loopback (tests/infra/swift-s3-up.sh, state
# under BENCH_DIR/swift, restarted empty for every run; its data and logs stay
# there after the benchmark, for a look after a failure).  restic 0.14 sends
# aws-chunked uploads over plain http, which Swift refuses, so both tools use
# the second Swift proxy that swift-s3-up.sh starts on the same object,
# container and account servers, serving https with a self-signed certificate
# (Swift's own cert_file/key_file; no extra package), with --cacert: the same
# TLS cost for both.  Over https both send bodies as UNSIGNED-PAYLOAD (coffer
# since 2026-12-02; --s3-sign-payload would sign them).  coffer over plain http
# (bodies signed) is an extra row (coffer-http).
#
# Needs: restic, time, openssl, curl, python3 and for S3 the Swift packages
# (swift-s3-up.sh installs them with apt-get when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
RUNS=3 do_local=1 do_s3=1 do_http=1 report=0 real=0 link=''
usage="usage: compare.sh [RUNS] [--local | --s3] [--no-http] [--real] [--link MS,MBIT] [--report]"
while [ $# -gt 0 ]; do
	case $1 in
	--local) do_local=1 do_s3=0 ;;
	--s3) do_local=0 do_s3=1 ;;
	--no-http) do_http=0 ;;
	--report) report=1 ;;
	--real) real=1 ;;
	--link)
		[[ ${2:-} =~ ^[0-9]+(\.[0-9]+)?,[0-9]+(\.[0-9]+)?$ ]] ||
			{ echo "compare.sh: --link takes MS,MBIT (e.g. --link 30,200), not '${2:-}'" >&2; exit 2; }
		link=$2; shift ;;
	[1-9] | [1-9][0-9]) RUNS=$1 ;;
	*) echo "compare.sh: unknown argument '$1' ($usage)" >&2; exit 2 ;;
	esac
	shift
done
[ -z "$link" ] || [ "$do_s3" = 1 ] || { echo "compare.sh: --link is for S3 (not with --local)" >&2; exit 2; }
B=${BENCH_DIR:-/var/tmp/coffer-bench}
COFFER=${COFFER:-$here/build/coffer}
SWIFT_PORT=${SWIFT_PORT:-16080}
TLS_PORT=${SWIFT_TLS_PORT:-$((SWIFT_PORT + 2))}
SD=$B/swift
mkdir -p "$B"
B=$(cd "$B" && pwd)
if [ ! -x "$COFFER" ] || [ ! -x "$here/build/bench_chunker" ]; then
	cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$here/build" -j"$(nproc)" >/dev/null
fi
for c in restic openssl curl python3; do
	command -v $c >/dev/null || { echo "compare.sh: $c is not installed (apt-get install $c)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "compare.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
corpus=$B/corpus
if [ "$real" = 1 ]; then
	corpus=$B/corpus-real
	if [ ! -d "$corpus" ]; then
		echo "copying real files into $corpus (once)..." >&2
		rm -rf "$corpus.tmp"
		mkdir -p "$corpus.tmp/usr/lib" "$corpus.tmp/usr/share"
		cp -a /usr/lib/x86_64-linux-gnu "$corpus.tmp/usr/lib/"
		cp -a /usr/share/doc "$corpus.tmp/usr/share/"
		cp -a /usr/include "$corpus.tmp/usr/"
		mv "$corpus.tmp" "$corpus"
	fi
elif [ ! -d "$corpus" ]; then
	echo "generating the corpus in $corpus (once)..." >&2
	bash "$here/bench/make_corpus.sh" "$corpus.tmp" 42 >&2
	mv "$corpus.tmp" "$corpus"
fi
echo pw > "$B/pw"
export COFFER_PASSWORD_FILE=$B/pw RESTIC_PASSWORD_FILE=$B/pw RESTIC_CACHE_DIR=$B/restic-cache
# each tool's local cache lives in the work area and starts empty every run
export COFFER_CACHE_DIR=$B/coffer-cache
export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
results=$B/results$([ "$real" = 1 ] && echo -real)$([ -n "$link" ] && echo -link).tsv
# sec CMD...: run it, print its wall seconds
sec() { /usr/bin/time -f %e -o "$B/sec.time" "$@" && cat "$B/sec.time"; }
if [ "$report" = 1 ]; then
	[ -s "$results" ] || { echo "compare.sh: no results in $results to report" >&2; exit 1; }
	RUNS=0 do_s3=0
else
	: > "$results"
fi

# server_ticks: CPU time (user + system, clock ticks) the S3 servers used so
# far: every Swift process runs single (workers = 0), one pid file each
server_ticks() {
	local n p sum=0 f
	for n in proxy proxy-tls object container account memcached link link-http; do
		[ -f "$SD/$n.pid" ] || continue
		p=$(cat "$SD/$n.pid")
		read -r -a f < "/proc/$p/stat" 2>/dev/null || continue
		# fields 14 and 15 (utime, stime); the command name (field 2) has no
		# blanks here (python3, memcached)
		sum=$((sum + f[13] + f[14]))
	done
	echo "$sum"
}

# measure TARGET TOOL STEP CMD...: appends "target tool step wall cpu rss_kib
# server_cpu sync": server_cpu is what the S3 servers on the same cores spent
# meanwhile (seconds; 0 for a local repository), sync how long a `sync` right
# after the command took (the writeback of what it left dirty in the page cache)
measure() {
	local target=$1 tool=$2 step=$3; shift 3
	local log=$B/time.log
	# no dirty pages left by the step before (the other tool's repository):
	# its writeback would run on the same 2 cores during this one
	sync
	local t0=0 t1=0 u0=0 d0=0 u1=0 d1=0
	[ "$target" = s3 ] && t0=$(server_ticks)
	[ "$target" = s3 ] && [ -n "$link" ] && read -r u0 d0 < <(link_bytes "$tool")
	/usr/bin/time -v -o "$log" "$@" > "$B/last.out" 2> "$B/last.err" || {
		echo "FAILED: $target $tool $step: $*" >&2; cat "$B/last.err" >&2; exit 1; }
	[ "$target" = s3 ] && t1=$(server_ticks)
	[ "$target" = s3 ] && [ -n "$link" ] && read -r u1 d1 < <(link_bytes "$tool")
	local wall cpu rss syncs
	syncs=$(sec sync)
	read -r wall cpu rss < <(python3 "$here/bench/timev.py" "$log")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$tool" "$step" "$wall" "$cpu" "$rss" \
		"$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
		"$syncs" "$((u1 - u0 > d1 - d0 ? u1 - u0 : d1 - d0))" >> "$results"
}

# --- S3 server: Swift on loopback, plus a TLS proxy for restic (and coffer) ---
# link_bytes TOOL: bytes the link proxy TOOL goes through has carried, "UP DOWN"
link_bytes() {
	local f=$SD/link.json
	[ "$1" = coffer-http ] && f=$SD/link-http.json
	sleep 0.5 # it rewrites its statistics every 0.2 s
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["bytes_up"], j["bytes_down"])' "$f"
}
link_up() { # NAME UPSTREAM_PORT: a linkem.py in front of the port, its port in $SD/NAME.port
	rm -f "$SD/$1.port"
	python3 "$here/bench/linkem.py" --upstream "127.0.0.1:$2" --delay-ms "${link%,*}" --rate-mbit "${link#*,}" \
		--port-file "$SD/$1.port" --stats "$SD/$1.json" > /dev/null 2> "$SD/$1.log" &
	echo $! > "$SD/$1.pid"
	for _ in $(seq 100); do [ -s "$SD/$1.port" ] && return 0; sleep 0.05; done
	echo "compare.sh: the link proxy did not start: $(cat "$SD/$1.log")" >&2
	exit 1
}
s3_down() {
	for n in link link-http; do
		[ -f "$SD/$n.pid" ] && kill "$(cat "$SD/$n.pid")" 2>/dev/null && rm -f "$SD/$n.pid"
	done
	# not purged: the logs in $SD/log stay for a look after a failure (the next start wipes them)
	[ -d "$SD" ] && bash "$here/tests/infra/swift-s3-down.sh" "$SD" 2>/dev/null || true
}
s3_fresh() { # an empty store: stop, wipe, start (http and https); sets SWIFT_TOKEN
	s3_down
	SWIFT_PORT=$SWIFT_PORT SWIFT_TLS_PORT=$TLS_PORT bash "$here/tests/infra/swift-s3-up.sh" "$SD" \
		> /dev/null 2> "$B/swift-up.log" ||
		{ echo "compare.sh: the S3 server did not start:" >&2; cat "$B/swift-up.log" >&2; exit 1; }
	SWIFT_TOKEN=$(curl -sf -D - -o /dev/null -H "X-Auth-User: test:tester" -H "X-Auth-Key: testing" \
		"http://127.0.0.1:$SWIFT_PORT/auth/v1.0" | tr -d '\r' | sed -n 's/^X-Auth-Token: //Ip')
	if [ -n "$link" ]; then
		link_up link "$TLS_PORT"
		link_up link-http "$SWIFT_PORT"
	fi
}
# evict DIR: the pages of every file under DIR leave the page cache (clean
# pages only: sync first)
evict() {
	python3 - "$1" <<'EVICT'
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(d, f)
        if os.path.isfile(p) and not os.path.islink(p):
            fd = os.open(p, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
EVICT
}

# --- restore target: a fresh ext4 for every restore (root), else a new directory ---
# On a file system that recently freed many inodes (the trees of the run
# before), creating files is slow: without a journal ext4 skips every free
# inode whose inode-table block is dirty and that was freed in the last 305 s
# (recently_deleted), and a deletion on a file system mounted with `discard`
# goes on in the background.  That cost both tools seconds of system time per
# restore here (a quarter of coffer's restore samples), and more the sooner
# after the deletion.  So, where it can (root, losetup, mkfs.ext4), every
# restore goes onto a freshly made ext4 (default options, with a journal) on a
# loop device over a sparse file in BENCH_DIR: what restoring into a new
# volume is.  Otherwise restored trees stay until the next run (see below).
loop='' mnt=$B/mnt
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null &&
	[ "${COMPARE_NO_LOOP:-0}" != 1 ] && [ "$RUNS" -gt 0 ]; then
	umount "$mnt" 2>/dev/null || true
	rm -f "$B/fs.img"
	truncate -s 16G "$B/fs.img"
	loop=$(losetup --direct-io=on -f --show "$B/fs.img")
	# writeback throttling as on the disk under it (a new loop device's target
	# is 2 ms, this VM's disk 75 ms: restores slept seconds in wbt_wait)
	dev=$(basename "$(df --output=source "$B" | tail -1)")
	q=/sys/class/block/$dev/queue
	[ -d "$q" ] || q=/sys/class/block/$dev/../queue
	if [ -r "$q/wbt_lat_usec" ] && [ -w "/sys/block/$(basename "$loop")/queue/wbt_lat_usec" ]; then
		cat "$q/wbt_lat_usec" > "/sys/block/$(basename "$loop")/queue/wbt_lat_usec"
	fi
	mkdir -p "$mnt"
else
	echo "compare.sh: not root (or COMPARE_NO_LOOP=1): restoring into directories of $B" >&2
fi
fresh_fs() {
	umount "$mnt" 2>/dev/null || true
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$loop"
	mount "$loop" "$mnt"
}
cleanup() {
	[ "$do_s3" = 1 ] && s3_down
	if [ -n "$loop" ]; then
		umount "$mnt" 2>/dev/null || true
		losetup -d "$loop" 2>/dev/null || true
		rm -f "$B/fs.img"
		rmdir "$mnt" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# repo_bytes TARGET TOOL: bytes the tool's repository holds
repo_bytes() {
	if [ "$1" = local ]; then
		du -sb "$B/r-$2" | cut -f1
	else # Swift's own API knows the container's size (updated synchronously on PUT)
		curl -sf -I -H "X-Auth-Token: $SWIFT_TOKEN" "http://127.0.0.1:$SWIFT_PORT/v1/AUTH_test/$2" |
			tr -d '\r' | sed -n 's/^X-Container-Bytes-Used: //Ip'
	fi
}
# location TARGET TOOL, tool_cmd TARGET TOOL: the repository and the command to reach it
location() {
	case $1:$2 in
	local:*) echo "$B/r-$2" ;;
	s3:coffer-http) echo "s3:http://127.0.0.1:$(s3_port http)/$2" ;;
	s3:*) echo "s3:https://127.0.0.1:$(s3_port https)/$2" ;;
	esac
}
s3_port() { # http|https: the port the tools reach the S3 server on
	if [ -n "$link" ]; then
		cat "$SD/link$([ "$1" = http ] && echo -http).port"
	elif [ "$1" = http ]; then
		echo "$SWIFT_PORT"
	else
		echo "$TLS_PORT"
	fi
}
tool_cmd() {
	local tls=()
	[ "$1" = s3 ] && [ "$2" != coffer-http ] && tls=(--cacert "$SD/tls.crt")
	case $2 in
	coffer*) echo "$COFFER" -r "$(location "$1" "$2")" "${tls[@]}" ;;
	restic) echo restic -r "$(location "$1" "$2")" "${tls[@]}" ;;
	esac
}

targets=()
[ "$do_local" = 1 ] && targets+=(local)
[ "$do_s3" = 1 ] && targets+=(s3)
tools_of() {
	if [ "$1" = s3 ] && [ "$do_http" = 1 ]; then echo coffer restic coffer-http; else echo coffer restic; fi
}

for run in $(seq 1 "$RUNS"); do # (no run for --report: seq 1 0 is empty)
	echo "run $run/$RUNS: copying the corpus..." >&2
	rm -rf "$B/src" "$B"/r-* "$B"/out-* "$B/restic-cache" "$B/coffer-cache"
	cp -a "$corpus" "$B/src"
	sync
	[ "$do_s3" = 1 ] && s3_fresh
	for target in "${targets[@]}"; do
		for tool in $(tools_of "$target"); do
			case $tool in
			coffer*) $(tool_cmd "$target" "$tool") init -q --kdf-passes 1 --kdf-memory 8192 >/dev/null ;;
			restic) $(tool_cmd "$target" "$tool") init >/dev/null 2>&1 ;;
			esac
		done
	done
	for step in initial nochange changed; do
		if [ "$step" = changed ] && [ "$real" = 1 ]; then
			python3 "$here/bench/mutate_tree.py" "$B/src" 1 >/dev/null
		elif [ "$step" = changed ]; then
			bash "$here/bench/mutate.sh" "$B/src" 1 >/dev/null 2>&1
		fi
		for target in "${targets[@]}"; do
			order=$(tools_of "$target")
			# alternate which tool goes first, so neither always gets the warmer cache
			[ $((run % 2)) = 0 ] && order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
			for tool in $order; do
				echo "  $target $tool $step" >&2
				before=$(repo_bytes "$target" "$tool")
				measure "$target" "$tool" "$step" $(tool_cmd "$target" "$tool") backup -q "$B/src"
				printf '%s\t%s\t%s-added\t%s\n' "$target" "$tool" "$step" \
					$(( $(repo_bytes "$target" "$tool") - before )) >> "$results"
			done
		done
	done
	for target in "${targets[@]}"; do
		for tool in $(tools_of "$target"); do
			printf '%s\t%s\trepo\t%s\n' "$target" "$tool" "$(repo_bytes "$target" "$tool")" >> "$results"
			echo "  $target $tool restore" >&2
			out=$B/out-$target-$tool
			if [ -n "$loop" ]; then
				fresh_fs
				out=$mnt/out
			fi
			# a restore reads the repository from the disk, as after a loss:
			# restic's backups leave their packs in the page cache, coffer's
			# (O_DIRECT) do not, so a warm cache would favour restic's
			# restore (11.1 s cold against 7.5 s warm here); over S3, the
			# Swift object files (all containers') are dropped the same way
			sync
			case $target in
			local) evict "$(location "$target" "$tool")" ;;
			s3) evict "$SD/srv" ;;
			esac
			measure "$target" "$tool" restore $(tool_cmd "$target" "$tool") restore -q latest --target "$out"
			diff -r --no-dereference "$B/src" "$out$B/src" >/dev/null ||
				{ echo "compare.sh: $tool restored from $target differs from the source!" >&2; exit 1; }
			if [ -n "$loop" ]; then # its pages go with it
				umount "$mnt"
				continue
			fi
			# the restored tree stays until the next run: deleting it here
			# made the next tool's restore scan recently freed inodes (see
			# fresh_fs).  Its pages leave the page cache, so that the trees
			# kept do not crowd the next restores' memory.
			sync
			evict "$out"
		done
	done
done
rm -rf "$B"/out-*
[ "$do_s3" = 1 ] && s3_down

# --- ceilings of this machine ---
echo "measuring the chunker, zstd -3 and disk reads..." >&2
chunker=$("$here/build/bench_chunker" 256 3 2>/dev/null | sed -n 's/^best: \([0-9.]* [MG]B\/s\).*/\1/p' || true)
src_bytes=$(du -sb --apparent-size "$corpus" | cut -f1)
# zstd -3 on one core over the whole corpus (read from the page cache)
zstd_s=$(sec sh -c "find '$corpus' -type f -print0 | sort -z | xargs -0 cat | zstd -3 -T1 -q -c > /dev/null")
# page cache read of the whole corpus, and a device read (O_DIRECT, no cache) of its large files
cat_s=$(sec sh -c "find '$corpus' -type f -print0 | xargs -0 cat > /dev/null")
# (the files over 1 MiB: the generated corpus' large/, the real files' biggest libraries)
find "$corpus" -type f -size +1M -print0 > "$B/large.list"
large_bytes=$(xargs -0 -r du -cb --apparent-size < "$B/large.list" | tail -1 | cut -f1)
dd_s=$(sec sh -c "xargs -0 -r -I{} dd if={} of=/dev/null bs=4M iflag=direct status=none < '$B/large.list'")

python3 - "$results" "$src_bytes" "$(nproc)" "${chunker:-?}" "$zstd_s" "$cat_s" "$large_bytes" "$dd_s" \
	"$([ "$real" = 1 ] && echo "real files ($corpus)" || echo "generated ($corpus)")" "$link" <<'PY'
import sys, statistics, collections, platform, subprocess
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
src = int(sys.argv[2]); cores = int(sys.argv[3]); chunker = sys.argv[4]
zstd_s, cat_s, large, dd_s = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
corpus_name, link = sys.argv[9], sys.argv[10]
link_ms, link_mbit = (float(x) for x in link.split(",")) if link else (0.0, 0.0)
t = collections.defaultdict(list)
for r in rows:
    t[(r[0], r[1], r[2])].append([float(x) for x in r[3:]])
def med(target, tool, step, i=0):
    v = [x[i] for x in t[(target, tool, step)] if len(x) > i]  # (results of older scripts lack columns)
    return statistics.median(v) if v else float("nan")
targets = [x for x in ["local", "s3"] if (x, "coffer", "initial") in t]
nruns = len(t[(targets[0], "coffer", "initial")])
print(f"coffer vs restic: corpus {src/2**30:.2f} GiB, {corpus_name}, {cores} cores, medians of {nruns} runs; "
      f"S3 = Swift s3api on loopback over https (coffer-http: plain http)"
      + (f", through a {link_ms:g} ms, {link_mbit:g} Mbit/s link (bench/linkem.py)" if link else ""))
print(f"{'repo':<5} {'step':<9} {'tool':<11} {'wall s':>8} {'+sync s':>8} {'CPU s':>8} {'srv CPU':>8} {'RSS MiB':>8} {'added MiB':>10}"
      + (f" {'link s':>8}" if link else "") + f"   coffer/restic: wall w+sync  CPU   RSS  size")
def ratio(a, b):
    return f"{a/b:5.2f}" if b == b and b > 0 and a == a else "    -"
for target in targets:
    tools = [x for x in ["coffer", "restic", "coffer-http"] if (target, x, "initial") in t]
    for step in ["initial", "nochange", "changed", "restore"]:
        vals = {}
        for tool in tools:
            w, c, rss = med(target, tool, step, 0), med(target, tool, step, 1), med(target, tool, step, 2) / 1024
            srv, ws = med(target, tool, step, 3), med(target, tool, step, 4)
            add = med(target, tool, step + "-added") / 2**20 if (target, tool, step + "-added") in t else float("nan")
            lb = med(target, tool, step, 5) * 8 / (link_mbit * 1e6) if link and target == "s3" else float("nan")
            vals[tool] = (w, c, rss, add, srv, w + ws, lb)
        for tool in tools:
            w, c, rss, add, srv, ws, lb = vals[tool]
            tail = ""
            if tool != "restic":
                rw, rc, rr, ra, _, rws, _ = vals["restic"]
                sz = ratio(add, ra) if ra == ra and ra >= 1 else "    -"  # ratios of (near) nothing mean nothing
                tail = f"{'':>16}{ratio(w, rw)}  {ratio(ws, rws)} {ratio(c, rc)} {ratio(rss, rr)} {sz}"
            adds = f"{add:10.1f}" if add == add else f"{'':>10}"
            srvs = f"{srv:8.2f}" if target == "s3" and srv == srv else f"{'-':>8}"
            wss = f"{ws:8.2f}" if ws == ws else f"{'-':>8}"
            lbs = (f" {lb:8.2f}" if lb == lb else f" {'-':>8}") if link else ""
            print(f"{target:<5} {step:<9} {tool:<11} {w:8.2f} {wss} {c:8.2f} {srvs} {rss:8.0f} {adds}{lbs}{tail}")
    sizes = ", ".join(f"{tool} {med(target, tool, 'repo')/2**20:.0f} MiB" for tool in tools)
    print(f"{target:<5} repository after 3 backups: {sizes} "
          f"(coffer/restic {ratio(med(target, 'coffer', 'repo'), med(target, 'restic', 'repo')).strip()})")
# on S3 the servers share the cores: the CPU both spend bounds the wall time
for step in ["initial", "restore"]:
    c, srv, rw = med("s3", "coffer", step, 1), med("s3", "coffer", step, 3), med("s3", "restic", step, 0)
    if c == c and srv == srv and rw == rw:
        lo = (c + srv) / cores
        print(f"s3    {step}: coffer's CPU {c:.2f} s + the S3 servers' {srv:.2f} s on {cores} cores "
              f"= at least {lo:.2f} s of wall, {lo/rw:.2f} of restic's {rw:.2f} s")
if link:
    print(f"link s: the step's bytes in its busier direction over {link_mbit:g} Mbit/s, the least wall "
          f"time the link allows; wall / link s for coffer:")
    for step in ["initial", "nochange", "changed", "restore"]:
        for tool in ["coffer", "restic"]:
            w, b = med("s3", tool, step, 0), med("s3", tool, step, 5) * 8 / (link_mbit * 1e6)
            if w == w and b == b and b > 0.5:
                print(f"  s3 {step:<9} {tool:<7} {w:7.2f} s = {w/b:4.2f} x the bound {b:.2f} s")
print()
print(f"chunker on one core (bench_chunker 256 MiB): {chunker}")
zs = src / zstd_s / 1e6
print(f"zstd -3 on one core over the corpus: {zs:.0f} MB/s, x {cores} cores = {zs*cores:.0f} MB/s ceiling")
print(f"disk read: {large/dd_s/1e6:.0f} MB/s device (O_DIRECT, the corpus' large files); "
      f"{src/cat_s/1e6:.0f} MB/s whole corpus from the page cache (the benchmark reads it warm)")
for target in targets:
    for tool in ["coffer", "restic"]:
        iw, rw = med(target, tool, "initial"), med(target, tool, "restore")
        print(f"{target:<5} {tool:<6} end to end: initial backup {src/iw/1e6:4.0f} MB/s, restore {src/rw/1e6:4.0f} MB/s")
try:
    model = [l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name")][0]
except Exception:
    model = platform.processor() or platform.machine()
print(f"machine: {model}, {cores} cores, {platform.platform()}")
PY
