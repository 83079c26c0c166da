#!/bin/bash
# json.sh - machine-readable output: `snapshots --json` is a JSON array with
# restic's field names plus coffer's summary; --host/--tag/--path filter both
# `snapshots` and `latest`; --time sets the snapshot time; `ls --json` prints
# one JSON object per line; `ls latest PATH` lists only that sub-tree;
# COFFER_REPOSITORY stands in for -r.
. "$(dirname "$0")/lib.sh"
e2e_setup

A=$T/data/alpha
B=$T/data/beta
mkdir -p "$A/x/y" "$B"
echo one > "$A/x/y/file one"
echo two > "$A/x/two"
echo three > "$A/three"
echo b > "$B/b"
R=$T/repo
init_repo "$R"

# from the environment instead of -r
export COFFER_REPOSITORY=$R
cof backup --host host-a --tag daily --tag db "$A"
cof backup --host host-b --tag weekly "$B"
cof backup --host host-a --time '2024-01-02 03:04:05' --tag old "$A" "$B"
unset COFFER_REPOSITORY

cof -r "$R" snapshots --json
cp "$T/out" "$T/snaps.json"
"$PY" - "$T/snaps.json" "$A" "$B" <<'EOF' || fail "snapshots --json is not what restic scripts expect"
import json, re, sys
j = json.load(open(sys.argv[1]))
A, B = sys.argv[2], sys.argv[3]
errs = []
if not isinstance(j, list) or len(j) != 3:
    sys.exit("want a JSON array of 3 snapshots, got %r" % (j,))
rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
for s in j:
    for k, t in (("id", str), ("short_id", str), ("time", str), ("hostname", str),
                 ("username", str), ("paths", list), ("tree", str), ("summary", dict)):
        if not isinstance(s.get(k), t):
            errs.append("%s: field %s missing or not %s" % (s.get("id"), k, t.__name__))
    if errs:
        break
    if not re.fullmatch(r"[0-9a-f]{64}", s["id"]):
        errs.append("id %r is not 64 hex digits" % s["id"])
    if s["short_id"] != s["id"][:8]:
        errs.append("short_id %r is not the id's first 8 characters" % s["short_id"])
    if not re.fullmatch(r"[0-9a-f]{64}", s["tree"]):
        errs.append("tree %r is not 64 hex digits" % s["tree"])
    if not rfc3339.match(s["time"]):
        errs.append("time %r is not RFC 3339" % s["time"])
    if not s["username"]:
        errs.append("empty username")
    for k in ("files_new", "files_changed", "files_unmodified", "data_added", "total_files_processed",
              "total_bytes_processed"):
        if not isinstance(s["summary"].get(k), int):
            errs.append("summary.%s missing" % k)
by = {tuple(s.get("tags") or []): s for s in j}
if set(by) != {("daily", "db"), ("weekly",), ("old",)}:
    errs.append("tags: %r" % list(by))
else:
    if by[("daily", "db")]["hostname"] != "host-a" or by[("weekly",)]["hostname"] != "host-b":
        errs.append("hostnames not as given with --host")
    if by[("daily", "db")]["paths"] != [A] or by[("old",)]["paths"] != sorted([A, B]):
        errs.append("paths: %r / %r" % (by[("daily", "db")]["paths"], by[("old",)]["paths"]))
    if not by[("old",)]["time"].startswith("2024-01-02T03:04:05"):
        errs.append("--time not honoured: %r" % by[("old",)]["time"])
    if "parent" in by[("weekly",)] and by[("weekly",)]["parent"]:
        errs.append("first snapshot of host-b has a parent")
for e in errs:
    print(e)
sys.exit(1 if errs else 0)
EOF
id_of() { json_field "$T/snaps.json" "[s['id'] for s in j if '$1' in (s.get('tags') or [])][0]"; }
DAILY=$(id_of daily)
WEEKLY=$(id_of weekly)
OLD=$(id_of old)

# count_snaps ARGS...: number of snapshots `snapshots --json ARGS` lists
count_snaps()
{
	cof -r "$R" snapshots --json "$@"
	cp "$T/out" "$T/f.json"
	json_field "$T/f.json" "len(j)"
}
assert_eq 2 "$(count_snaps --host host-a)" "--host host-a"
assert_eq 1 "$(count_snaps --host host-b)" "--host host-b"
assert_eq 0 "$(count_snaps --host nobody-here)" "--host with no match"
assert_eq 1 "$(count_snaps --tag daily)" "--tag daily"
assert_eq 1 "$(count_snaps --tag db)" "--tag db"
# restic semantics: --path selects snapshots holding at least the given paths
check_eq 2 "$(count_snaps --path "$A")" "--path A (restic: snapshots that include A)"
assert_eq 1 "$(count_snaps --path "$A" --path "$B")" "--path A --path B"
assert_eq 1 "$(count_snaps --host host-a --tag old)" "--host and --tag together"

# the plain listing shows every snapshot's short id
cof -r "$R" snapshots
for id in "$DAILY" "$WEEKLY" "$OLD"; do
	assert_contains "$T/out" "${id:0:8}" "plain snapshots listing"
done

# `latest` is the newest by snapshot time, within the filters
latest_of()
{
	cof -r "$R" ls latest --json "$@"
	head -n 1 "$T/out" > "$T/l.json"
	json_field "$T/l.json" "j['id']"
}
assert_eq "$WEEKLY" "$(latest_of)" "latest (the --time 2024 snapshot is older)"
assert_eq "$DAILY" "$(latest_of --host host-a)" "latest --host host-a"
assert_eq "$OLD" "$(latest_of --tag old)" "latest --tag old"
assert_eq "$WEEKLY" "$(latest_of --path "$B")" "latest --path B"
check_eq "$DAILY" "$(latest_of --path "$A")" "latest --path A"
expect_exit 1 "$COFFER" -r "$R" ls latest --host nobody-here
assert_contains "$T/err" "no snapshot" "latest with no match"
# an id prefix names a snapshot too
cof -r "$R" ls --json "${OLD:0:10}"
head -n 1 "$T/out" > "$T/l.json"
assert_eq "$OLD" "$(json_field "$T/l.json" "j['id']")" "snapshot by id prefix"

# ls --json: every line is a JSON object; the nodes are the snapshot's files
cof -r "$R" ls latest --json --host host-a
cp "$T/out" "$T/ls.json"
"$PY" - "$T/ls.json" "$A" <<'EOF' || fail "ls --json output"
import json, sys
A = sys.argv[2]
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]
if objs[0].get("struct_type") != "snapshot":
    sys.exit("first line is not the snapshot: %r" % objs[0])
nodes = {o["path"]: o for o in objs[1:]}
for o in objs[1:]:
    if o.get("struct_type") != "node":
        sys.exit("not a node: %r" % o)
    for k in ("name", "type", "path", "uid", "gid", "size", "mode", "mtime"):
        if k not in o:
            sys.exit("node without %s: %r" % (k, o))
want = {A + "/x/y/file one": ("file", 4), A + "/x/two": ("file", 4), A + "/three": ("file", 6),
        A + "/x": ("dir", None), A + "/x/y": ("dir", None)}
for p, (t, size) in want.items():
    if p not in nodes:
        sys.exit("ls --json misses %s" % p)
    if nodes[p]["type"] != t or (size is not None and nodes[p]["size"] != size):
        sys.exit("wrong node for %s: %r" % (p, nodes[p]))
EOF

# ls latest PATH lists the sub-tree and nothing else
cof -r "$R" ls latest --host host-a "$A/x"
sort "$T/out" > "$T/ls-sub"
printf '%s\n' "$A/x" "$A/x/two" "$A/x/y" "$A/x/y/file one" | sort > "$T/ls-want"
diff -u "$T/ls-want" "$T/ls-sub" >&2 || fail "ls latest $A/x listed something else"
cof -r "$R" ls latest --host host-a "$A/x/"
sort "$T/out" | cmp -s - "$T/ls-want" || fail "ls with a trailing slash differs"
cof -r "$R" ls latest --json --host host-a "$A/x/y"
tail -n +2 "$T/out" > "$T/sub.json"
assert_eq 2 "$(wc -l < "$T/sub.json")" "ls --json of a sub-tree: node count"
"$PY" -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$T/sub.json" ||
	fail "ls --json of a sub-tree is not JSON lines"

# backup --json prints JSON lines as restic: status lines (at least the
# last one), then the summary (json_restic.sh checks their keys)
cof -r "$R" --json backup --host host-c "$B"
"$PY" -c 'import json,sys; t=[json.loads(l)["message_type"] for l in open(sys.argv[1])]; sys.exit(not (t[-1] == "summary" and len(t) > 1 and set(t[:-1]) == {"status"}))' "$T/out" ||
	fail "backup --json: not status lines then one summary: $(cat "$T/out")"
cp "$T/out" "$T/bk.json"
assert_eq summary "$(json_field "$T/bk.json" "j['message_type']")" "backup --json message_type"

# key list --json is JSON
cof -r "$R" --json key list
cp "$T/out" "$T/keys.json"
assert_eq 1 "$(json_field "$T/keys.json" "len(j)")" "key list --json entries"
e2e_done
