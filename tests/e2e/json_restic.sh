#!/bin/bash
# json_restic.sh - `--json` carries restic's keys where the names match.
#
# restic 0.14 (Debian's) backs up the same small tree as coffer: for every
# message type both print (backup's status and summary, ls's snapshot and
# node, backup's error lines for unreadable files) coffer's lines must have
# every key restic's have, with the same JSON type; ls's mode and
# permissions must be equal path by path (Go's os.FileMode bits).  Where
# restic 0.14 prints no JSON (restore, check, version, exit errors) or
# lacks newer keys (data_added_packed, backup_start, message_type on ls),
# coffer is checked against restic's documented schema
# (doc/075_scripting.rst).
. "$(dirname "$0")/lib.sh"
e2e_setup
command -v restic > /dev/null || skip "restic is not installed (Debian package restic)"

D=$T/data
mkdir -p "$D/dir/sub" "$D/empty"
echo one > "$D/a"
echo two > "$D/dir/b"
head -c 300000 /dev/zero > "$D/dir/sub/zeros"
ln -s a "$D/link"
mkfifo "$D/fifo"
chmod 4755 "$D/dir/b"
chmod 1777 "$D/empty"
chmod 0600 "$D/a"

export RESTIC_PASSWORD=restic-test RESTIC_CACHE_DIR=$T/restic-cache
RR=$T/restic-repo
restic -r "$RR" init > /dev/null 2>&1 || fail "restic init"
(cd "$T" && restic -r "$RR" backup --json data) > "$T/r-backup.json" 2> "$T/r-backup.err" ||
	fail "restic backup: $(cat "$T/r-backup.err")"
restic -r "$RR" ls --json latest > "$T/r-ls.json" 2> /dev/null || fail "restic ls"

R=$T/repo
init_repo "$R"
cof -r "$R" --json backup "$D"
cp "$T/out" "$T/c-backup.json"
cof -r "$R" --json ls latest
cp "$T/out" "$T/c-ls.json"
cof -r "$R" --json restore latest --target "$T/restored"
cp "$T/out" "$T/c-restore.json"
cof -r "$R" --json check
cp "$T/out" "$T/c-check.json"
cof -r "$R" --json prune
cp "$T/out" "$T/c-prune.json"
cof --json version
cp "$T/out" "$T/c-version.json"
expect_exit 10 "$COFFER" -r "$T/no-repo-here" --json snapshots
cp "$T/err" "$T/c-exit.err"

"$PY" - "$T" "$(dirname "$D")" <<'EOF' || fail "coffer's --json lacks restic's keys"
import json, sys
T, base = sys.argv[1], sys.argv[2]
errs = []

def lines(name):
    return [json.loads(l) for l in open("%s/%s" % (T, name)) if l.strip()]

def jtype(v):
    if isinstance(v, bool): return "bool"
    if isinstance(v, (int, float)): return "number"
    if isinstance(v, str): return "string"
    if isinstance(v, list): return "array"
    if isinstance(v, dict): return "object"
    return "null"

def keys_of(objs):
    """every key any of objs has, with its JSON type"""
    k = {}
    for o in objs:
        for n, v in o.items():
            k.setdefault(n, jtype(v))
    return k

def covers(what, coffer, want):
    """coffer (list of objects) has every key of want (name -> type) in each object"""
    if not coffer:
        errs.append("%s: coffer printed no such line" % what)
        return
    for o in coffer:
        for n, t in want.items():
            if n not in o:
                errs.append("%s: key %s missing in %s" % (what, n, json.dumps(o)[:200]))
            elif t and jtype(o[n]) != t:
                errs.append("%s: key %s is %s, restic's is %s" % (what, n, jtype(o[n]), t))

def by_type(objs, field="message_type"):
    d = {}
    for o in objs:
        d.setdefault(o.get(field), []).append(o)
    return d

# --- backup: against restic 0.14's own lines, then the documented keys
rb, cb = by_type(lines("r-backup.json")), by_type(lines("c-backup.json"))
cl = lines("c-backup.json")
if cl[-1].get("message_type") != "summary":
    errs.append("backup: the last line is not the summary")
if set(cb) != {"status", "summary"}:
    errs.append("backup: message types %r" % sorted(cb, key=str))
for mt in ("status", "summary"):
    covers("backup %s vs restic 0.14" % mt, cb.get(mt), keys_of(rb.get(mt, [])))
N, S, A, B = "number", "string", "array", "bool"
covers("backup status (documented)", cb.get("status"),
       dict(message_type=S, seconds_elapsed=N, percent_done=N, total_files=N, files_done=N,
            total_bytes=N, bytes_done=N, error_count=N, current_files=A))
covers("backup summary (documented)", cb.get("summary"),
       dict(message_type=S, dry_run=B, files_new=N, files_changed=N, files_unmodified=N,
            dirs_new=N, dirs_changed=N, dirs_unmodified=N, data_blobs=N, tree_blobs=N,
            data_added=N, data_added_packed=N, total_files_processed=N, total_bytes_processed=N,
            backup_start=S, backup_end=S, total_duration=N, snapshot_id=S))
s = cb["summary"][0] if cb.get("summary") else {}
if s:
    rs = rb["summary"][0]
    for k in ("files_new", "files_changed", "files_unmodified", "total_files_processed",
              "total_bytes_processed"):
        if s.get(k) != rs.get(k):
            errs.append("backup summary %s: coffer %r, restic %r" % (k, s.get(k), rs.get(k)))
    if s.get("snapshot_id") != s.get("id"):
        errs.append("backup summary: snapshot_id %r is not the snapshot id" % s.get("snapshot_id"))

# --- ls: the snapshot line, then nodes; modes equal path by path
rl, cls = lines("r-ls.json"), lines("c-ls.json")
covers("ls snapshot vs restic 0.14", cls[:1], keys_of(rl[:1]))
covers("ls snapshot (documented)", cls[:1], dict(message_type=S, struct_type=S, time=S, tree=S,
       paths=A, hostname=S, username=S, id=S, short_id=S))
if cls and cls[0].get("message_type") != "snapshot":
    errs.append("ls: the first line's message_type is %r" % cls[0].get("message_type"))
rnodes = {o["path"]: o for o in rl[1:]}
cnodes = {o["path"][len(base):]: o for o in cls[1:] if o["path"].startswith(base + "/")}
for o in cls[1:]:
    if o.get("message_type") != "node" or o.get("struct_type") != "node":
        errs.append("ls: not a node line: %s" % json.dumps(o)[:200])
        break
for p, r in rnodes.items():
    c = cnodes.get(p)
    if c is None:
        errs.append("ls: coffer has no node %s" % p)
        continue
    covers("ls node %s vs restic 0.14" % p, [c], keys_of([r]))
    covers("ls node %s (documented)" % p, [c], dict(inode=N, atime=S, ctime=S, permissions=S))
    for k in ("type", "mode", "permissions", "uid", "gid"):
        if c.get(k) != r.get(k):
            errs.append("ls node %s: %s is %r, restic's %r" % (p, k, c.get(k), r.get(k)))
    if r.get("type") == "file" and c.get("size") != r.get("size"):
        errs.append("ls node %s: size %r, restic's %r" % (p, c.get("size"), r.get("size")))

# --- restore (restic 0.14 has no --json restore: the documented keys)
cr = lines("c-restore.json")
rd = by_type(cr)
if set(rd) != {"status", "summary"} or cr[-1].get("message_type") != "summary":
    errs.append("restore: message types %r, last %r" % (sorted(rd, key=str), cr[-1].get("message_type")))
restore_keys = dict(message_type=S, seconds_elapsed=N, total_files=N, files_restored=N,
                    files_skipped=N, files_deleted=N, total_bytes=N, bytes_restored=N,
                    bytes_skipped=N)
covers("restore summary (documented)", rd.get("summary"), restore_keys)
covers("restore status (documented, last)", rd.get("status", [])[-1:], dict(restore_keys, percent_done=N))
if rd.get("summary"):
    sm = rd["summary"][0]
    if (sm.get("files_restored"), sm.get("total_files")) != (3, 3):
        errs.append("restore summary: %r files restored of %r (want 3 of 3)" % (sm.get("files_restored"), sm.get("total_files")))

# --- check, prune, version, exit_error (documented; prune has none: the summary shape)
covers("check summary (documented)", [o for o in lines("c-check.json") if o.get("message_type") == "summary"],
       dict(message_type=S, num_errors=N, broken_packs=A, suggest_repair_index=B, suggest_prune=B))
covers("prune summary", [o for o in lines("c-prune.json") if o.get("message_type") == "summary"],
       dict(message_type=S, dry_run=B))
covers("version (documented, without go_version)", lines("c-version.json"),
       dict(message_type=S, version=S, go_os=S, go_arch=S))
ex = [json.loads(l) for l in open(T + "/c-exit.err") if l.startswith("{")]
covers("exit_error (documented)", ex, dict(message_type=S, code=N, message=S))
if ex and (ex[-1].get("message_type"), ex[-1].get("code")) != ("exit_error", 10):
    errs.append("exit_error: %r" % ex[-1])
for e in errs:
    print(e)
sys.exit(1 if errs else 0)
EOF

# --- error lines: unreadable entries, as an unprivileged user ---------------
if [ "$(id -u)" != 0 ] || ! command -v setpriv > /dev/null; then
	note "not root or no setpriv: the error-line comparison is skipped"
	e2e_done
fi
AS=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
U=$T/user
chmod 755 "$T"
chmod 644 "$PWFILE"
mkdir -p "$U/src/ok" "$U/src/locked"
echo fine > "$U/src/ok/fine"
echo secret > "$U/src/secret"
chown -R 65534:65534 "$U"
chmod 000 "$U/src/secret" "$U/src/locked"
"${AS[@]}" env RESTIC_CACHE_DIR="$U/rcache" restic -r "$U/rrepo" init > /dev/null 2>&1 || fail "restic init (uid 65534)"
"${AS[@]}" env RESTIC_CACHE_DIR="$U/rcache" restic -r "$U/rrepo" backup --json "$U/src" \
	> "$U/r.out" 2> "$U/r.err"
[ $? = 3 ] || fail "restic backup of unreadable files did not exit 3"
expect_exit 0 "${AS[@]}" "$COFFER" -r "$U/repo" init --kdf-passes 1 --kdf-memory 64
expect_exit 3 env COFFER_CACHE_DIR="$U/cache" "${AS[@]}" "$COFFER" -r "$U/repo" --json backup "$U/src"
cp "$T/err" "$U/c.err"
cp "$T/out" "$U/c.out"
"$PY" - "$U" <<'EOF' || fail "backup --json error lines"
import json, sys
U = sys.argv[1]
def errors(f):
    return [json.loads(l) for l in open(f) if l.startswith("{")]
r, c = errors(U + "/r.err"), errors(U + "/c.err")
want = {k for o in r for k in o}
errs = []
if not c:
    errs.append("coffer printed no JSON error line on stderr")
for o in c:
    if o.get("message_type") != "error":
        errs.append("not an error line: %r" % o)
    if not want <= set(o):
        errs.append("error line lacks %s: %r" % (sorted(want - set(o)), o))
    if not isinstance(o.get("error"), dict) or not isinstance(o["error"].get("message"), str):
        errs.append("error.message missing: %r" % o)
items = {o.get("item") for o in c}
for p in (U + "/src/secret", U + "/src/locked"):
    if p not in items:
        errs.append("no error line names %s (items: %r)" % (p, sorted(map(str, items))))
out = [json.loads(l) for l in open(U + "/c.out")]
if out[-1].get("message_type") != "summary" or out[-1].get("files_unreadable") != 2:
    errs.append("summary after errors: %r" % out[-1])
for e in errs:
    print(e)
sys.exit(1 if errs else 0)
EOF
e2e_done
