#!/bin/bash
# swapped_objects.sh - objects named by a content hash are used only under
# their own name, a replayed index cannot hide a good copy of a blob, and one
# bad index file costs only what it alone knew (issue 23, findings 3 and 4).
#
# (1) Two snapshots' files swapped in the store: `snapshots` never shows one
#     snapshot's metadata under the other's id, `restore <B>` never restores
#     A's tree (it fails naming B), `check` fails naming both.
# (2) Index files from before a `forget --prune` copied back into index/ (a
#     replay naming packs prune deleted): every remaining snapshot still
#     restores bit-exact; `check` passes or names only the replayed files;
#     after `prune`, `check` passes.  With both the old packs and the new
#     ones in the store and either set damaged, restore and dump read the
#     good copy.
# (3) Two index files' contents swapped, an index file truncated, an index
#     file that cannot be read (as nobody, when root): each is named and
#     skipped, snapshots that do not need it restore bit-exact, one that does
#     fails naming what is missing, `check` exits non-zero naming the file.
. "$(dirname "$0")/lib.sh"
e2e_setup

# names NAME... : each of the (hex) names appears, by its first 16 digits,
# in the last command's stdout+stderr
names()
{
	local what=$1 n
	shift
	cat "$T/out" "$T/err" > "$T/both"
	for n in "$@"; do
		grep -qF "${n:0:16}" "$T/both" ||
			{ sed 's/^/    /' "$T/both" >&2; soft_fail "$what: ${n:0:16} not named"; }
	done
}

# restore_same REPO ID COPY: restore must succeed and give exactly COPY
restore_same()
{
	rm -rf "$T/rst"
	expect_exit 0 "$COFFER" -r "$1" restore "$2" --target "$T/rst"
	compare_trees "$3" "$T/rst$4"
}

# --- (1) two snapshot files swapped ------------------------------------------
S=$T/src
mkdir -p "$S"
echo "version A" > "$S/f"
randfile "$S/a-only" 70000
R=$T/repo1
init_repo "$R"
cof -r "$R" backup "$S"
cp -a "$S" "$T/copy.A"
A=$(latest_id "$R")
echo "version B, longer" > "$S/f"
rm "$S/a-only"
randfile "$S/b-only" 90000
cof -r "$R" backup "$S" --tag second
cp -a "$S" "$T/copy.B"
B=$(latest_id "$R")
[ "$A" != "$B" ] || fail "two snapshots with one id"
"$COFFER" -r "$R" --json snapshots > "$T/before.json" || fail "snapshots --json"
TREE_A=$(json_field "$T/before.json" "[s['tree'] for s in j if s['id']=='$A'][0]")
TREE_B=$(json_field "$T/before.json" "[s['tree'] for s in j if s['id']=='$B'][0]")

mv "$R/snapshots/$A" "$T/snapA"
mv "$R/snapshots/$B" "$R/snapshots/$A"
mv "$T/snapA" "$R/snapshots/$B"

"$COFFER" -r "$R" --json snapshots > "$T/out" 2> "$T/err"
rc=$?
cp "$T/out" "$T/after.json"
if [ "$rc" = 0 ]; then
	# every snapshot listed must carry its own metadata (tree, tags)
	bad=$("$PY" - "$T/after.json" "$A" "$TREE_A" "$B" "$TREE_B" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
want = {sys.argv[2]: sys.argv[3], sys.argv[4]: sys.argv[5]}
print(sum(1 for s in j if s["id"] in want and s["tree"] != want[s["id"]]))
EOF
)
	check_eq 0 "$bad" "snapshots listed with another snapshot's tree after the swap"
	for id in "$A" "$B"; do
		if ! grep -qF "$id" "$T/after.json"; then
			grep -qF "${id:0:16}" "$T/err" || soft_fail "snapshots: $id neither listed nor named"
		fi
	done
fi
"$COFFER" -r "$R" snapshots > "$T/out" 2> "$T/err"
names "snapshots after the swap" "$A" "$B"

rm -rf "$T/rst"
"$COFFER" -r "$R" restore "$B" --target "$T/rst" > "$T/out" 2> "$T/err"
rc=$?
if [ "$rc" = 0 ]; then
	# restoring B may only ever give B's tree
	compare_trees "$T/copy.B" "$T/rst$S"
else
	names "restore of a swapped snapshot" "$B"
	[ -e "$T/rst$S/a-only" ] && soft_fail "restore $B wrote A's files (a-only)"
fi
[ -e "$T/rst$S/a-only" ] && soft_fail "restore $B restored A's tree"
expect_fail "$COFFER" -r "$R" check
names "check after the swap" "$A" "$B"
[ "$RC" -lt 128 ] || soft_fail "check crashed (exit $RC)"

# --- (2) index files from before a prune put back ---------------------------
# Backup i adds k_i (kept in every later backup) and u_i (gone from the next
# one): forgetting all but the last two leaves packs 1..3 with an unused
# blob each, which prune (--max-unused 0) repacks and deletes.
S=$T/src2
mkdir -p "$S"
R=$T/repo2
init_repo "$R"
for i in 1 2 3 4 5; do
	randfile "$S/k$i" $((60000 + i * 1000))
	rm -f "$S/u$((i - 1))"
	randfile "$S/u$i" $((50000 + i * 1000))
	echo "round $i" > "$S/round"
	cof -r "$R" backup "$S"
	cp -a "$S" "$T/copy2.$i"
	ID[$i]=$(latest_id "$R")
done
mkdir "$T/oldindex" "$T/olddata"
cp -a "$R/index/." "$T/oldindex/"
cp -a "$R/data/." "$T/olddata/"
cof -r "$R" forget --keep-last 2 --prune --max-unused 0%
cof -r "$R" check
packs_after=$(find "$R/data" -type f | wc -l)
gone=0
for f in "$T/oldindex"/*; do
	[ -e "$R/index/$(basename "$f")" ] || gone=$((gone + 1))
done
[ "$gone" -ge 1 ] || fail "prune replaced no index file: nothing to replay"
cp -a "$T/oldindex/." "$R/index/"
note "replayed $gone index files from before the prune ($packs_after packs left)"
for i in 4 5; do
	restore_same "$R" "${ID[$i]}" "$T/copy2.$i" "$S"
done
# dump reads through the blob loader (the fallback outside restore)
expect_exit 0 "$COFFER" -r "$R" dump "${ID[4]}" "$S/k2"
cmp -s "$T/out" "$S/k2" || soft_fail "dump of k2 after the replay differs"
"$COFFER" -r "$R" check > "$T/out" 2> "$T/err"
rc=$?
if [ "$rc" != 0 ]; then
	# only the replayed index files may be blamed
	grep '^error:' "$T/err" > "$T/errors" || true
	while IFS= read -r line; do
		ok=0
		for f in "$T/oldindex"/*; do
			n=$(basename "$f")
			[ -e "$R/index/$n" ] || continue
			case $line in *"${n:0:16}"*) ok=1 ;; esac
		done
		[ "$ok" = 1 ] || soft_fail "check after the replay blames more than a replayed index: $line"
	done < "$T/errors"
fi
# (2b) both copies of the repacked blobs in the store, one of them damaged
# (every 4 KiB of its packs flipped): whichever copy the index lists first,
# restore and dump must read the good one.  Old packs are those prune
# deleted, new ones those it wrote.
damage() { local f=$1 size off; size=$(stat -c %s "$f"); for ((off = 100; off < size - 200; off += 4096)); do flip_byte "$f" "$off"; done; }
for bad in old new; do
	rm -rf "$T/r2b"
	cp -a "$R" "$T/r2b"
	nold=0 nnew=0
	for f in $(cd "$T/olddata" && find . -type f); do
		[ -e "$R/data/$f" ] && continue
		cp "$T/olddata/$f" "$T/r2b/data/$f"
		nold=$((nold + 1))
		[ "$bad" = old ] && damage "$T/r2b/data/$f"
	done
	for f in $(cd "$R/data" && find . -type f); do
		[ -e "$T/olddata/$f" ] && continue
		nnew=$((nnew + 1))
		[ "$bad" = new ] && damage "$T/r2b/data/$f"
	done
	[ "$nold" -ge 1 ] && [ "$nnew" -ge 1 ] || fail "prune deleted $nold and wrote $nnew packs: nothing to damage"
	# directly, and through the fault: wrapper (a remote store to the
	# reader: trees come from whole tree packs fetched and cached)
	for loc in "$T/r2b" "fault:$T/r2b"; do
		for i in 4 5; do
			restore_same "$loc" "${ID[$i]}" "$T/copy2.$i" "$S"
		done
		expect_exit 0 "$COFFER" -r "$loc" dump "${ID[4]}" "$S/k1"
		cmp -s "$T/out" "$S/k1" || soft_fail "dump of k1 from $loc with the $bad copy damaged differs"
	done
done

cof -r "$R" prune
cof -r "$R" check
assert_not_contains "$T/err" "stale" "check after prune"
for i in 4 5; do
	restore_same "$R" "${ID[$i]}" "$T/copy2.$i" "$S"
done

# --- (3) index files swapped, truncated, unreadable -------------------------
# three backups of unrelated directories: each needs only its own index file
R=$T/repo3
declare -A IDX SID
init_repo "$R"
for x in p q s; do
	mkdir -p "$T/$x"
	randfile "$T/$x/data" 80000
	echo "$x" > "$T/$x/name"
	before=$(ls "$R/index")
	cof -r "$R" backup "$T/$x"
	IDX[$x]=$(comm -13 <(echo "$before") <(ls "$R/index"))
	SID[$x]=$(latest_id "$R")
	[ -n "${IDX[$x]}" ] || fail "backup of $x wrote no index file"
done
copy() { rm -rf "$T/$1"; cp -a "$R" "$T/$1"; }

copy swap
IP=$T/swap/index/${IDX[p]}
IQ=$T/swap/index/${IDX[q]}
mv "$IP" "$T/tmpidx"; mv "$IQ" "$IP"; mv "$T/tmpidx" "$IQ"
rm -rf "$T/rst"
expect_exit 0 "$COFFER" -r "$T/swap" restore "${SID[s]}" --target "$T/rst"
compare_trees "$T/s" "$T/rst$T/s"
names "restore with two index files swapped" "${IDX[p]}" "${IDX[q]}"
expect_fail "$COFFER" -r "$T/swap" restore "${SID[p]}" --target "$T/rst-p"
[ "$RC" -lt 128 ] || soft_fail "restore crashed (exit $RC)"
assert_contains "$T/err" "not in the index" "restore of a snapshot only a skipped index knew"
expect_fail "$COFFER" -r "$T/swap" check
names "check with two index files swapped" "${IDX[p]}" "${IDX[q]}"

copy trunc
IS=$T/trunc/index/${IDX[s]}
truncate -s $(( $(stat -c %s "$IS") / 2 )) "$IS"
for x in p q; do
	rm -rf "$T/rst"
	expect_exit 0 "$COFFER" -r "$T/trunc" restore "${SID[$x]}" --target "$T/rst"
	compare_trees "$T/$x" "$T/rst$T/$x"
	names "restore with a truncated index file" "${IDX[s]}"
done
expect_fail "$COFFER" -r "$T/trunc" check
names "check with a truncated index file" "${IDX[s]}"

if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
	AS=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
elif [ "$(id -u)" != 0 ]; then
	AS=()
else
	AS=(none)
fi
if [ "${AS[0]:-}" != none ]; then
	copy unread
	chmod -R a+rX "$T/unread" "$T"
	chmod 644 "$PWFILE"
	chmod 000 "$T/unread/index/${IDX[q]}"
	mkdir -p "$T/rst-nobody"
	chmod 777 "$T/rst-nobody"
	expect_exit 0 "${AS[@]}" env COFFER_CACHE_DIR="$T/rst-nobody/cache" "$COFFER" -r "$T/unread" \
		restore "${SID[p]}" --target "$T/rst-nobody/t"
	names "restore with an unreadable index file" "${IDX[q]}"
	"$PY" - "$T/p" "$T/rst-nobody/t$T/p" <<'EOF' || soft_fail "restore as nobody with an unreadable index: content differs"
import os, sys
a, b = sys.argv[1], sys.argv[2]
for n in sorted(os.listdir(a)):
    if open(os.path.join(a, n), "rb").read() != open(os.path.join(b, n), "rb").read():
        sys.exit(1)
EOF
	expect_fail "${AS[@]}" "$COFFER" -r "$T/unread" check
	[ "$RC" -lt 128 ] || soft_fail "check crashed (exit $RC)"
	names "check with an unreadable index file" "${IDX[q]}"
	assert_contains "$T/out" "3 snapshots" "check goes on past an unreadable index file"
	chmod 644 "$T/unread/index/${IDX[q]}"
else
	note "root without setpriv: the unreadable index file part is skipped"
fi

e2e_done
