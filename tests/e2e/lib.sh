# lib.sh - shared helpers for the end-to-end tests (sourced, not run).
#
# Every test drives the built `coffer` binary ($COFFER, set by CTest) the way
# a user would: real files in a private temporary directory, a local
# repository, passwords from a file.  Exit codes follow the CTest contract:
# 0 passed, 77 skipped, anything else failed.
#
# Helpers:
#   e2e_setup            make $T (temp dir, removed on exit), $PWFILE, export
#                        COFFER_PASSWORD_FILE; unset other COFFER_* settings
#   fail MSG / skip MSG  end the test (exit 1 / exit 77)
#   soft_fail MSG        record a failure, go on; e2e_done exits with the verdict
#   assert_eq WANT GOT WHAT (check_eq: the same, soft), assert_le A B WHAT, assert_contains FILE STR WHAT
#   expect_exit CODE CMD...   run CMD, stdout -> $T/out, stderr -> $T/err,
#                        fail (showing both) unless it exits with CODE
#   init_repo DIR [ARGS]  coffer init with a cheap KDF (tests must be fast)
#   compare_trees A B    content and metadata of two trees must be identical
#   json_field FILE EXPR  evaluate a python expression on the JSON in FILE
#                        (JSON lines: on the last line, the summary)
#   randfile PATH BYTES  fast pseudo-random content (openssl AES-CTR keystream)
#   flip_byte FILE OFFSET  change one byte (always: XOR 0x01)

set -u

if [ -z "${COFFER:-}" ]; then
	if [ -n "${COFFER_BUILD_DIR:-}" ] && [ -x "$COFFER_BUILD_DIR/coffer" ]; then
		COFFER=$COFFER_BUILD_DIR/coffer
	else
		echo "COFFER is not set (path of the coffer binary)" >&2
		exit 1
	fi
fi
case $COFFER in /*) ;; *) COFFER=$PWD/$COFFER ;; esac

PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

E2E_NAME=$(basename "$0" .sh)
E2E_PIDS=()

e2e_cleanup()
{
	local p
	for p in "${E2E_PIDS[@]}"; do
		kill -CONT "$p" 2>/dev/null
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -n "${T:-}" ] && [ -d "$T" ]; then
		chmod -R u+rwX "$T" 2>/dev/null
		rm -rf "$T"
	fi
}

fail()
{
	echo "FAIL [$E2E_NAME]: $*" >&2
	exit 1
}

# soft_fail MSG: record a failure and go on, so one broken property does not
# hide the others; e2e_done turns it into the exit status.
E2E_FAILED=0
soft_fail()
{
	echo "FAIL [$E2E_NAME]: $*" >&2
	E2E_FAILED=1
}

e2e_done()
{
	if [ "$E2E_FAILED" != 0 ]; then
		echo "[$E2E_NAME] FAILED (see above)" >&2
		exit 1
	fi
	echo "[$E2E_NAME] passed" >&2
	exit 0
}

skip()
{
	echo "SKIP [$E2E_NAME]: $*" >&2
	exit 77
}

note()
{
	echo "[$E2E_NAME] $*" >&2
}

e2e_setup()
{
	T=$(mktemp -d /tmp/coffer-e2e-"$E2E_NAME".XXXXXX) || fail "mktemp"
	trap e2e_cleanup EXIT
	trap 'exit 130' INT TERM
	unset COFFER_REPOSITORY COFFER_PASSWORD COFFER_PASSWORD_FILE
	# backups keep their directory cache inside the test's own directory
	export COFFER_CACHE_DIR=$T/cache
	PWFILE=$T/password
	printf 'correct horse battery staple\n' > "$PWFILE"
	export COFFER_PASSWORD_FILE=$PWFILE
	export TZ=UTC
	# prune keeps packs younger than an hour (its safety margin against a
	# misjudged lock); tests make their garbage seconds before pruning it,
	# so the margin is off unless a test (prune_pidns.sh) sets it
	export COFFER_TEST_PRUNE_MARGIN_SECONDS=0
	unset COFFER_TEST_LOCK_STALE_SECONDS
}

assert_eq()
{
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

# check_eq WANT GOT WHAT: like assert_eq but records the failure and goes on
check_eq()
{
	[ "$1" = "$2" ] || soft_fail "$3: expected '$1', got '$2'"
}

# assert_le A B WHAT: integer A <= integer B
assert_le()
{
	[ "$1" -le "$2" ] || fail "$3: $1 is not <= $2"
}

# assert_contains FILE STRING WHAT (fixed string, case-insensitive)
assert_contains()
{
	grep -qiF -- "$2" "$1" || { sed 's/^/    /' "$1" >&2; fail "$3: '$2' not found"; }
}

assert_not_contains()
{
	if grep -qiF -- "$2" "$1"; then
		sed 's/^/    /' "$1" >&2
		fail "$3: '$2' found"
	fi
}

# The error convention: the problem is named on one line of stderr.
assert_one_line_err()
{
	local n
	n=$(wc -l < "$T/err")
	[ "$n" -eq 1 ] || { sed 's/^/    /' "$T/err" >&2; fail "$1: expected one line on stderr, got $n"; }
}

# expect_exit CODE CMD...: stdout in $T/out, stderr in $T/err.
expect_exit()
{
	local want=$1 got
	shift
	"$@" > "$T/out" 2> "$T/err"
	got=$?
	if [ "$got" != "$want" ]; then
		echo "  command: $*" >&2
		echo "  stdout:" >&2; sed 's/^/    /' "$T/out" | head -40 >&2
		echo "  stderr:" >&2; sed 's/^/    /' "$T/err" | head -40 >&2
		fail "expected exit $want, got $got: $*"
	fi
}

# expect_fail CMD...: any non-zero exit (the code is left in $RC).
expect_fail()
{
	"$@" > "$T/out" 2> "$T/err"
	RC=$?
	if [ "$RC" = 0 ]; then
		sed 's/^/    /' "$T/out" "$T/err" >&2
		fail "expected failure, got exit 0: $*"
	fi
}

# Runs coffer and fails the test on a non-zero exit.
cof()
{
	expect_exit 0 "$COFFER" "$@"
}

init_repo()
{
	local repo=$1
	shift
	expect_exit 0 "$COFFER" -r "$repo" init --kdf-passes 1 --kdf-memory 64 "$@"
}

# randfile PATH BYTES: incompressible content, far faster than /dev/urandom.
randfile()
{
	openssl enc -aes-128-ctr -nosalt -pass "pass:$RANDOM$RANDOM$1" -pbkdf2 < /dev/zero 2>/dev/null |
		head -c "$2" > "$1"
}

# flip_byte FILE OFFSET: change the byte at OFFSET (XOR 0x01), whatever it
# was; writing a fixed value left random content unchanged once in 256 runs.
flip_byte()
{
	"$PY" - "$1" "$2" <<'EOF' || fail "cannot flip byte $2 of $1"
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0x01]))
EOF
}

# json_field FILE EXPR: print EXPR evaluated with j = the parsed JSON; in
# JSON lines as `backup --json` and `restore --json` print them (status
# lines, then the summary, as restic's), j is the last line.
json_field()
{
	"$PY" -c '
import json, sys
t = open(sys.argv[1]).read()
try:
    j = json.loads(t)
except ValueError:
    j = json.loads(t.strip().splitlines()[-1])
print(eval(sys.argv[2]))' "$1" "$2" || fail "cannot evaluate $2 on $1"
}

# The id of the last snapshot (by time) as printed by `snapshots --json`.
latest_id()
{
	"$COFFER" -r "$1" --json snapshots > "$T/snaps.json" || fail "snapshots --json"
	json_field "$T/snaps.json" 'sorted(j, key=lambda s: s["time"])[-1]["id"]'
}

# snap_record REPO SRC: append the latest snapshot's id to SNAPS and keep a
# copy of SRC as it is now in $T/copy.ID (what that snapshot must restore).
snap_record()
{
	local id
	id=$(latest_id "$1")
	rm -rf "$T/copy.$id"
	cp -a "$2" "$T/copy.$id"
	SNAPS+=("$id")
}

# podman_conf: a containers.conf for podman and buildah on these machines
# (runc, cgroupfs, no systemd; ulimits a container may raise), in CONTAINERS_CONF.
podman_conf()
{
	cat > "$T/containers.conf" << 'CONF'
[containers]
default_ulimits = ["nofile=1024:20000", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
	export CONTAINERS_CONF=$T/containers.conf
}

# bin_image NAME "PROGRAM..." PODMAN...: import a tiny image NAME holding only
# the given programs (each as /bin/<its name>, symlinks followed), their
# libraries and an empty /data (a container of it costs almost nothing, even
# with vfs storage) into the store PODMAN... uses; non-zero, with podman's
# message in $T/image.log, when it cannot.
bin_image()
{
	local name=$1 progs=$2 p l
	shift 2
	rm -rf "$T/image"
	mkdir -p "$T/image/bin" "$T/image/data"
	for p in $progs; do
		cp -L "$p" "$T/image/bin/"
	done
	for l in $(for p in $progs; do ldd "$p"; done | grep -o '/[^ ]*' | sort -u); do
		mkdir -p "$T/image$(dirname "$l")"
		cp -L "$l" "$T/image$l"
	done
	tar -C "$T/image" -cf "$T/image.tar" . && rm -rf "$T/image" &&
		"$@" import "$T/image.tar" "$name" > "$T/image.log" 2>&1
}

# sleeper_image NAME PODMAN...: bin_image of /bin/sleep alone.
sleeper_image()
{
	local name=$1
	shift
	bin_image "$name" /bin/sleep "$@"
}

# allocated_kib FILE: space the file occupies on disk.
allocated_kib()
{
	echo $(( $(stat -c '%b * %B' "$1") / 1024 ))
}

# compare_trees A B: walk both trees and compare, entry by entry (the roots
# included): type, permission bits (incl. setuid/setgid/sticky), uid, gid,
# mtime in ns, size, SHA-256 of the content, symlink target, device number,
# hard-link groups (which paths share an inode), all extended attributes, and
# sparseness: a file with holes in A must have holes in B and take no more
# than A's allocated size plus 1 MiB.  Names are handled as raw bytes.
# Prints every difference and records a failure (soft_fail) if there is one.
compare_trees()
{
	"$PY" - "$1" "$2" <<'EOF' || soft_fail "trees differ: $1 vs $2"
import hashlib, os, stat, sys

def walk(root):
    root = os.fsencode(root)
    ents = {}
    inodes = {}
    def visit(rel):
        p = os.path.join(root, rel) if rel else root
        st = os.lstat(p)
        m = st.st_mode
        e = {"mode": oct(stat.S_IMODE(m)), "uid": st.st_uid, "gid": st.st_gid,
             "mtime_ns": st.st_mtime_ns}
        if stat.S_ISREG(m):
            e["type"] = "file"
            e["size"] = st.st_size
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for b in iter(lambda: f.read(1 << 20), b""):
                    h.update(b)
            e["sha256"] = h.hexdigest()
            e["_alloc"] = st.st_blocks * 512
        elif stat.S_ISDIR(m):
            e["type"] = "dir"
        elif stat.S_ISLNK(m):
            e["type"] = "symlink"
            e["target"] = os.readlink(p)
        elif stat.S_ISFIFO(m):
            e["type"] = "fifo"
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            e["type"] = "chardev" if stat.S_ISCHR(m) else "blockdev"
            e["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        elif stat.S_ISSOCK(m):
            e["type"] = "socket"
        if not stat.S_ISDIR(m) and st.st_nlink > 1:
            inodes.setdefault(st.st_ino, []).append(rel)
        try:
            names = os.listxattr(p, follow_symlinks=False)
        except OSError:
            names = []
        e["xattrs"] = sorted((n, os.getxattr(p, n, follow_symlinks=False)) for n in names
                             if not n.startswith("security.selinux"))
        ents[rel] = e
        if stat.S_ISDIR(m):
            for n in sorted(os.listdir(p)):
                visit(os.path.join(rel, n) if rel else n)
    visit(b"")
    for group in inodes.values():
        if len(group) < 2:  # other links are outside the compared tree
            continue
        first = min(group)
        for rel in group:
            ents[rel]["hardlink_group"] = (first, len(group))
    return ents

a, b = walk(sys.argv[1]), walk(sys.argv[2])
bad = 0
def show(rel):
    return repr(rel or b".")
for rel in sorted(set(a) | set(b)):
    if rel not in b:
        print("missing in restore:", show(rel)); bad += 1; continue
    if rel not in a:
        print("extra in restore:", show(rel)); bad += 1; continue
    ea, eb = a[rel], b[rel]
    for k in sorted((set(ea) | set(eb)) - {"_alloc"}):
        if ea.get(k) != eb.get(k):
            print("%s: %s differs: %r != %r" % (show(rel), k, ea.get(k), eb.get(k))); bad += 1
    if ea.get("type") == "file" and eb.get("type") == "file" and ea["_alloc"] < ea["size"]:
        if eb["_alloc"] >= eb["size"] or eb["_alloc"] > ea["_alloc"] + (1 << 20):
            print("%s: sparse file not restored sparse: %d bytes allocated (source %d, size %d)"
                  % (show(rel), eb["_alloc"], ea["_alloc"], ea["size"])); bad += 1
if bad:
    print("%d differences" % bad)
    sys.exit(1)
print("trees identical: %d entries" % len(a))
EOF
}

# wait_for CMD... : poll (10 ms) up to 20 s until CMD succeeds.
wait_for()
{
	local i
	for ((i = 0; i < 2000; i++)); do
		"$@" && return 0
		sleep 0.01
	done
	return 1
}

# wait_until SECONDS CMD...: CMD succeeds within SECONDS (polled every 0.1 s).
wait_until()
{
	local end=$(($(date +%s) + $1))
	shift
	while [ "$(date +%s)" -le "$end" ]; do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# has_files DIR: DIR holds at least one regular file (anywhere below).
has_files()
{
	[ -n "$(find "$1" -type f -print -quit 2>/dev/null)" ]
}

# mariadb_vars URL: the mariadb client's arguments for a mariadb:// URL (as
# COFFER_TEST_MARIADB): MDB_ARGS (--no-defaults, user, password, connection),
# MDB_CONN (the connection alone, to log in as another account) and
# MDB_USERHOST (user@host, as a DEFINER names it).  Use: eval "$(mariadb_vars "$URL")"
mariadb_vars()
{
	"$PY" - "$1" <<'PYEOF'
import sys, urllib.parse, shlex
u = urllib.parse.urlsplit(sys.argv[1])
q = urllib.parse.parse_qs(u.query)
args = ["--no-defaults", "-u", urllib.parse.unquote(u.username or "")]
if u.password is not None:
    args.append("-p" + urllib.parse.unquote(u.password))
if "socket" in q:
    conn = ["--socket", q["socket"][0]]
else:
    conn = ["-h", u.hostname, "-P", str(u.port or 3306), "--protocol=tcp"]
print("MDB_ARGS=(%s)" % " ".join(shlex.quote(a) for a in args + conn))
print("MDB_CONN=(%s)" % " ".join(shlex.quote(a) for a in conn))
print("MDB_USERHOST=%s" % shlex.quote("%s@%s" % (u.username, u.hostname or "localhost")))
PYEOF
}
