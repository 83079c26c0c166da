#!/bin/bash
# restore_race.sh - a root restore into a directory that someone else can
# write to changes nothing outside it, however the names in it are swapped
# while it runs (issue 23, finding 1).
#
# For each kind of entry (fifo, char device, regular file, directory,
# symlink) a snapshot A of RACE_ENTRIES entries with modes such as 0666,
# 04755, 06777 and foreign owners, and a snapshot B of the same tree with
# other modes, owners, times and (files) contents.  Each of RACE_RUNS runs
# restores A into a fresh target and then B over it with --delete (the
# existing-entry paths: kept fifos/devices/symlinks whose metadata is reset,
# files compared and kept or rewritten, directories reused), while a
# swapper (python, renameat2 RENAME_EXCHANGE) exchanges entries of the
# target, the restore's temporary files first, with symlinks and hard links
# to sentinels OUTSIDE the target: a file with the content of half the
# snapshot's files, another file, a fifo, a char device, a directory with a
# file in it, and a symlink with the snapshot's symlink target (all mode
# 0600 or 0700, owned by root, times in 2001).  Some swaps are undone at
# once (a narrow window between a check and a use), some are left in place
# (the restore meets a planted link when it plans).
#
# Asserts: every sentinel keeps its type, mode, owner, mtime, atime (files,
# fifos, devices: not even read; sentinels are timed in the past, so any
# read would move the atime), size, content, link target and device number,
# the directory its entries; nothing outside gains a setuid/setgid bit; the
# swapper did swap.
# Restores that report errors while raced are expected.  After the races
# an un-raced restore of B over the raced target restores it bit-exact.
# Root only (ownership, device nodes, hard links to others' files).
. "$(dirname "$0")/lib.sh"
e2e_setup
[ "$(id -u)" = 0 ] || skip "needs root (foreign owners, device nodes, the attack's hard links)"

N=${RACE_ENTRIES:-300}
RUNS=${RACE_RUNS:-20}
KINDS=${RACE_KINDS:-fifo chardev file dir symlink}
SAME="the content of every even file, and of the sentinel outside"

# --- the sentinels outside every target ---
O=$T/outside
mkdir -p "$O/dir" "$T/bait" "$T/junk" "$T/tgt"
printf '%s\n' "$SAME" > "$O/file"
printf '%s\n' "another sentinel outside the target, not in any snapshot" > "$O/file2"
mkfifo "$O/fifo"
mknod "$O/chr" c 1 3
echo inner > "$O/dir/inner"
ln -s tgt "$O/link"
chmod 0600 "$O/file" "$O/file2" "$O/fifo" "$O/chr" "$O/dir/inner"
chmod 0700 "$O/dir"
chown -R -h 0:0 "$O"
find "$O" -depth -exec touch -h -d '2001-02-03 04:05:06.123456789' {} +

cat > "$T/sentinels.py" << 'EOF'
# sentinels.py DIR: one line per entry below DIR (DIR included) with all
# that must not change; contents are read with O_NOATIME so that reading
# them moves no atime (directory and symlink atimes are left out: listing
# and readlink move them).
import hashlib, os, stat, sys
root = sys.argv[1]
for dp, dns, fns in os.walk(root):
    dns.sort()
    for n in [None] + sorted(dns + fns):
        p = dp if n is None else os.path.join(dp, n)
        if n is not None and n in dns:
            continue  # listed as the dp of its own walk step
        st = os.lstat(p)
        m = st.st_mode
        e = [p, oct(m), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size]
        if not stat.S_ISDIR(m) and not stat.S_ISLNK(m):
            e.append(st.st_atime_ns)
        if stat.S_ISREG(m):
            fd = os.open(p, os.O_RDONLY | os.O_NOATIME)
            with os.fdopen(fd, "rb") as f:
                e.append(hashlib.sha256(f.read()).hexdigest())
        elif stat.S_ISLNK(m):
            e.append(os.readlink(p))
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            e.append(st.st_rdev)
        elif stat.S_ISDIR(m):
            e.append(sorted(os.listdir(p)))
        print(*e)
EOF
"$PY" "$T/sentinels.py" "$O" > "$T/sentinels.before" || fail "cannot list the sentinels"
[ -z "$(find "$O" -perm /6000)" ] || fail "setup: a sentinel has setuid/setgid"

# --- the swapper: the attacker ---
cat > "$T/swapper.py" << 'EOF'
# swapper.py CONTROL ACK OUTSIDE BAIT JUNK COUNT: until CONTROL says "stop"
# (or 300 s pass), exchange entries of the directory CONTROL names with
# baits: symlinks and hard links to the sentinels in OUTSIDE.  CONTROL is
# "GEN PATH" (PATH empty: idle); GEN is echoed to ACK each time it is read,
# so that the test knows the swapper has moved on.  COUNT gets the number
# of exchanges done.
import ctypes, os, random, sys, time
control, ack, outside, bait, junk, count = sys.argv[1:7]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE, SYS_renameat2 = -100, 2, 316
def xchg(a, b):
    return libc.syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0
kinds = [("sym", n) for n in ("file", "file2", "fifo", "chr", "dir", "link")] + \
        [("hard", n) for n in ("file", "file2", "fifo", "chr", "link")]
want = {n: os.lstat(os.path.join(outside, n)).st_ino for n in ("file", "file2", "fifo", "chr", "link")}
baits = []
for i in range(4):
    for k, n in kinds:
        baits.append((os.path.join(bait, "%s-%s-%d" % (k, n, i)).encode(), k, n))
junkno = 0
def refresh(b):
    """make the bait what it should be again (after an exchange it may hold
    an entry of the target: that goes to JUNK, nothing is deleted)"""
    global junkno
    path, k, n = b
    s = os.path.join(outside, n)
    try:
        st = os.lstat(path)
        if k == "sym" and os.path.islink(path) and os.readlink(path) == s:
            return
        if k == "hard" and st.st_ino == want[n]:
            return
        junkno += 1
        os.rename(path, os.path.join(junk, "j%d" % junkno))
    except FileNotFoundError:
        pass
    if k == "sym":
        os.symlink(s, path)
    else:
        os.link(s, path, follow_symlinks=False)
for b in baits:
    refresh(b)
swaps = 0
deadline = time.monotonic() + 300
gen = None
while time.monotonic() < deadline:
    try:
        with open(control) as f:
            c = f.read().split(" ", 1)
    except FileNotFoundError:
        continue
    if c[0] == "stop":
        break
    if c[0] != gen:
        gen = c[0]
        with open(ack + ".tmp", "w") as f:
            f.write(gen)
        os.rename(ack + ".tmp", ack)
    d = c[1].strip() if len(c) > 1 else ""
    if not d:
        time.sleep(0.002)
        continue
    d = d.encode()
    try:
        names = os.listdir(d)
    except OSError:
        continue
    random.shuffle(names)
    # the restore's temporary names first: they live for a few system calls
    names.sort(key=lambda n: not n.startswith(b".coffer-tmp-"))
    for n in names[:40]:
        b = random.choice(baits)
        refresh(b)
        p = os.path.join(d, n)
        if xchg(p, b[0]):
            swaps += 1
            if random.random() < 0.6 and xchg(p, b[0]):  # undone at once
                swaps += 1
with open(count, "w") as f:
    f.write(str(swaps))
EOF

# set_ctl PATH: tell the swapper what to attack ("": nothing); wait until it
# has read it (and so finished what it was doing before)
GEN=0
ack_is()
{
	[ "$(cat "$T/ack" 2> /dev/null)" = "$1" ]
}
set_ctl()
{
	GEN=$((GEN + 1))
	printf '%s %s' "$GEN" "$1" > "$T/ctl.tmp" && mv "$T/ctl.tmp" "$T/ctl"
	wait_for ack_is "$GEN" || fail "the swapper does not answer"
}

# --- the snapshots: A and B of each kind ---
owner() # owner I: a foreign owner (or root) by index
{
	case $(($1 % 4)) in
	0) echo 1234:5678 ;; 1) echo 0:0 ;; 2) echo 65534:65534 ;; 3) echo 4321:0 ;;
	esac
}
mode() # mode KIND I VARIANT
{
	local m
	case $1 in
	dir) m=(0777 02775 01777 0755 02700) ;;
	*) m=(0666 04755 06777 0600 0640) ;;
	esac
	echo "${m[$(( ($2 + $3) % ${#m[@]} ))]}"
}
# make_tree KIND DIR VARIANT: N entries of KIND in DIR (variant 0: A, 1: B)
make_tree()
{
	local kind=$1 d=$2 v=$3 i n
	mkdir -p "$d"
	for ((i = 0; i < N; i++)); do
		n=$(printf '%s/e%03d' "$d" "$i")
		case $kind in
		fifo) mkfifo "$n" ;;
		chardev) mknod "$n" c 1 3 ;;
		symlink) ln -s tgt "$n" ;;
		dir) mkdir "$n" && echo "in dir $i" > "$n/f" && chown "$(owner $((i + v + 1)))" "$n/f" ;;
		file)
			if ((i % 2 == 0)); then
				printf '%s\n' "$SAME" > "$n"
			elif ((v == 1 && i % 4 == 1)); then # B: same size, other content
				printf '%s\n' "$SAME" | tr 'a-z' 'A-Z' > "$n"
			else
				printf '%s\n' "$SAME" | tr 'a-z' 'b-za' > "$n"
			fi ;;
		esac
		chown -h "$(owner $((i + v)))" "$n"
		[ "$kind" = symlink ] || chmod "$(mode "$kind" "$i" "$v")" "$n"
		touch -h -d "2019-0$((v + 1))-0$((i % 9 + 1)) 10:11:12.$((i + 1))" "$n"
	done
	touch -d "2018-03-04 05:06:07.8" "$d"
}

init_repo "$T/repo"
declare -A SNAP_A SNAP_B
for kind in $KINDS; do
	make_tree "$kind" "$T/src/$kind" 0
	cof -r "$T/repo" --json backup "$T/src/$kind"
	SNAP_A[$kind]=$(json_field "$T/out" 'j["id"]')
	rm -rf "$T/src/$kind"
	make_tree "$kind" "$T/src/$kind" 1
	cof -r "$T/repo" --json backup "$T/src/$kind"
	SNAP_B[$kind]=$(json_field "$T/out" 'j["id"]')
done

: > "$T/ctl"
"$PY" "$T/swapper.py" "$T/ctl" "$T/ack" "$O" "$T/bait" "$T/junk" "$T/swaps" &
SWAPPER=$!
E2E_PIDS+=("$SWAPPER")
set_ctl ""

raced_err=0
total_runs=0
SUID_SEEN=""
changed_kinds=""
for kind in $KINDS; do
	for ((r = 0; r < RUNS; r++)); do
		R=$T/tgt/$kind.$r
		set_ctl "$R$T/src/$kind"
		"$COFFER" -r "$T/repo" restore "${SNAP_A[$kind]}" --target "$R" > /dev/null 2>> "$T/raced.err" ||
			raced_err=$((raced_err + 1))
		"$COFFER" -r "$T/repo" restore "${SNAP_B[$kind]}" --target "$R" --delete > /dev/null 2>> "$T/raced.err" ||
			raced_err=$((raced_err + 1))
		total_runs=$((total_runs + 2))
	done
	set_ctl ""
	# the un-raced restore over what the races left (planted links
	# included): bit-exact
	expect_exit 0 "$COFFER" -r "$T/repo" restore "${SNAP_B[$kind]}" --target "$R" --delete
	compare_trees "$T/src/$kind" "$R$T/src/$kind"
	"$PY" "$T/sentinels.py" "$O" > "$T/sentinels.after" || fail "cannot list the sentinels"
	if ! cmp -s "$T/sentinels.before" "$T/sentinels.after"; then
		diff "$T/sentinels.before" "$T/sentinels.after" | sed 's/^/    /' >&2
		soft_fail "$kind: restores raced by swapped names changed sentinels outside the target"
		changed_kinds+=" $kind"
		cp "$T/sentinels.after" "$T/sentinels.before" # the next kind is judged on its own
	fi
	suid=$(find "$O" -perm /6000 | sort)
	[ "$suid" = "$SUID_SEEN" ] || soft_fail "$kind: outside the target, setuid/setgid appeared on: $suid"
	SUID_SEEN=$suid
done

printf 'stop' > "$T/ctl.tmp" && mv "$T/ctl.tmp" "$T/ctl"
wait "$SWAPPER" || soft_fail "the swapper failed"
swaps=$(cat "$T/swaps" 2> /dev/null || echo 0)
[ "$swaps" -gt 0 ] || soft_fail "the swapper made no exchange: the races were not run"
if [ -s "$T/raced.err" ]; then
	note "what the raced restores reported (names folded):"
	grep -v -e '^  ' -e 'could not restore [0-9]* paths' "$T/raced.err" |
		sed -E 's/e[0-9]{3}/eNNN/g; s/[0-9]+ entries/N entries/; s#'"$T"'/tgt/[a-z]+\.[0-9]+'"$T"'#TARGET#g' |
		sort | uniq -c | sort -rn | head -12 >&2
fi
note "kinds: $KINDS; $total_runs raced restores of $N entries each; $swaps exchanges;" \
	"$raced_err raced restores reported errors (expected);" \
	"kinds whose restores changed something outside: ${changed_kinds:-none}"
e2e_done
