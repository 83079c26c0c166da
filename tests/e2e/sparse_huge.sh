#!/bin/bash
# sparse_huge.sh - a 1 TiB sparse file with 5 MiB of data at five offsets
# backs up without reading its holes: the backup process (and its threads)
# read (rchar, /proc/PID/io) less than 100 MiB, where reading the holes is
# 1 TiB.  A deterministic count, not a time; the run is still killed after
# 300 s (reading 1 TiB of zeros at 5 GB/s takes 200 s; the old reader did
# 55 GB in 9.5 minutes).  The restored file has the same size, the same
# bytes (every data region of either file compared, the rest is holes in
# both), and stays sparse (a few MiB allocated).  A second backup of the
# unchanged file reads it not at all (the file is unmodified).  A dense copy
# of a 200 MiB sparse file adds no blob after the sparse one: the chunks of a
# hole not read are exactly those of reading its zeros.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/src"
F=$T/src/huge
truncate -s 1T "$F" 2> /dev/null || skip "the file system of $T cannot hold a 1 TiB sparse file"
OFFS_MIB=(0 4097 262144 700001 1048575) # MiB offsets: start, middle, last MiB
for o in "${OFFS_MIB[@]}"; do
	randfile "$T/piece" 1048576
	dd if="$T/piece" of="$F" bs=1M seek="$o" conv=notrunc status=none || fail "dd at $o MiB"
done
ALLOC=$(allocated_kib "$F")
[ "$ALLOC" -lt 65536 ] || skip "the file system does not keep holes (${ALLOC} KiB allocated)"
check_eq $((1 << 40)) "$(stat -c %s "$F")" "source size"

# run_io LIMIT_S OUT CMD...: run CMD, print the bytes it read (rchar of the
# reaped child, accumulated into ours) after it ends or is killed at LIMIT_S
run_io()
{
	"$PY" - "$@" <<'EOF'
import os, signal, subprocess, sys
limit, out, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
def rchar():
    for l in open("/proc/self/io"):
        if l.startswith("rchar:"):
            return int(l.split()[1])
before = rchar()
with open(out, "wb") as o:
    p = subprocess.Popen(cmd, stdout=o, stderr=subprocess.STDOUT)
    try:
        rc = p.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait(); rc = "timeout"
after = rchar()
print(after - before, rc)
EOF
}

MIB=$((1 << 20))
read -r READ RC < <(run_io 300 "$T/backup1.out" "$COFFER" -r "$R" --json backup "$T/src")
note "first backup of 1 TiB sparse: read $((READ / MIB)) MiB, exit $RC"
[ "$RC" = 0 ] || { cat "$T/backup1.out" >&2; fail "backup of the sparse file: exit $RC after reading $((READ / MIB)) MiB"; }
[ "$READ" -lt $((100 * MIB)) ] || soft_fail "the backup read $((READ / MIB)) MiB of a file with 5 MiB of data"
check_eq $((1 << 40)) "$(json_field "$T/backup1.out" 'j["summary"]["total_bytes_processed"]')" "bytes processed"

# --- restore: same size, same bytes, still sparse ------------------------
t0=$(date +%s)
cof -r "$R" restore latest --target "$T/restored"
note "restore of 1 TiB sparse: $(( $(date +%s) - t0 )) s"
G=$T/restored$F
check_eq $((1 << 40)) "$(stat -c %s "$G")" "restored size"
RALLOC=$(allocated_kib "$G")
note "allocated: source ${ALLOC} KiB, restored ${RALLOC} KiB"
[ "$RALLOC" -le $((ALLOC + 1024)) ] || soft_fail "restored file not sparse: ${RALLOC} KiB allocated (source ${ALLOC} KiB)"
# every data region of either file is compared; outside them both are holes
"$PY" - "$F" "$G" <<'EOF' || soft_fail "restored content differs"
import os, sys
def regions(path):
    fd = os.open(path, os.O_RDONLY); size = os.fstat(fd).st_size; pos = 0; out = []
    while pos < size:
        try:
            d = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h)); pos = h
    os.close(fd)
    return out
a, b = sys.argv[1], sys.argv[2]
ra, rb = regions(a), regions(b)
total = sum(h - d for d, h in ra + rb)
assert total < 256 << 20, "data regions too large to compare: %d" % total
with open(a, "rb") as fa, open(b, "rb") as fb:
    for d, h in ra + rb:
        fa.seek(d); fb.seek(d)
        if fa.read(h - d) != fb.read(h - d):
            print("differs in [%d, %d)" % (d, h)); sys.exit(1)
print("identical: %d data regions compared, %d MiB" % (len(ra) + len(rb), total >> 20))
EOF
for o in "${OFFS_MIB[@]}"; do
	a=$(dd if="$F" bs=1M skip="$o" count=1 status=none | sha256sum)
	b=$(dd if="$G" bs=1M skip="$o" count=1 status=none | sha256sum)
	check_eq "$a" "$b" "sha256 of the MiB at $o MiB"
done

# --- a second backup of the unchanged file reads nothing of it ------------
read -r READ2 RC2 < <(run_io 300 "$T/backup2.out" "$COFFER" -r "$R" --json backup "$T/src")
check_eq 0 "$RC2" "second backup"
check_eq 1 "$(json_field "$T/backup2.out" 'j["summary"]["files_unmodified"]')" "unmodified files in the second backup"
[ "$READ2" -lt $((2 * MIB)) ] || soft_fail "the second backup read $((READ2 / MIB)) MiB"
note "second backup: read $((READ2 / 1024)) KiB"

# --- the holes' chunks are exactly those of reading the zeros: a dense copy
# of a sparse file (holes of 3 to 73 MiB, data at odd offsets) adds no blob
mkdir -p "$T/sp" "$T/dense"
truncate -s 200M "$T/sp/s"
for o in 0 3 77 150 199; do
	randfile "$T/piece" 300000
	dd if="$T/piece" of="$T/sp/s" bs=1M seek="$o" conv=notrunc status=none
done
printf 'odd' | dd of="$T/sp/s" bs=1 seek=123456789 conv=notrunc status=none
cp --sparse=never "$T/sp/s" "$T/dense/s"
[ "$(allocated_kib "$T/sp/s")" -lt 10240 ] || soft_fail "the 200 MiB source is not sparse"
cof -r "$R" --json backup "$T/sp"
cof -r "$R" --json backup "$T/dense"
check_eq "0 0" "$(json_field "$T/out" 'str(j["summary"]["data_blobs"]) + " " + str(j["summary"]["data_added"])')" \
	"new blobs and bytes of a dense copy after its sparse original"

e2e_done
