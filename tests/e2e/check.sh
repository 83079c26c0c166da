#!/bin/bash
# check.sh - `check` passes on a healthy repository and names each damaged
# object: a flipped byte in a pack, or in its header or trailer, a pack
# stored under another's name (check --read-data), a truncated snapshot
# (check; `snapshots` warns and lists the rest), a deleted pack (check), a
# damaged index file (check).  Damaged data never restores silently wrong.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S/d"
randfile "$S/big" $((24 << 20))
randfile "$S/mid" $((2 << 20))
for i in 1 2 3 4 5; do echo "small $i" > "$S/d/s$i"; done
R=$T/repo
init_repo "$R"
cof -r "$R" backup "$S"
echo changed >> "$S/d/s1"
cof -r "$R" backup "$S"

cof -r "$R" check
assert_contains "$T/out" "no errors" "check on a healthy repository"
cof -r "$R" check --read-data
assert_contains "$T/out" "no errors" "check --read-data on a healthy repository"
cof -r "$R" --json snapshots
cp "$T/out" "$T/snaps.json"
FIRST=$(json_field "$T/snaps.json" "sorted(j, key=lambda s: s['time'])[0]['id']")
SECOND=$(json_field "$T/snaps.json" "sorted(j, key=lambda s: s['time'])[1]['id']")

# fresh copy of the healthy repository for each kind of damage
copy() { rm -rf "$T/$1"; cp -a "$R" "$T/$1"; }

# names_it ID WHAT: stdout+stderr of the last command name ID (the full id
# or at least its first 8 hex digits)
names_it()
{
	cat "$T/out" "$T/err" > "$T/both"
	grep -qF "${1:0:8}" "$T/both" || { sed 's/^/    /' "$T/both" >&2; soft_fail "$2: $1 not named"; }
}

# --- a flipped byte in the middle of the largest pack ------------------------
copy flip
PACK=$(find "$T/flip/data" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
PACKID=$(basename "$PACK")
SIZE=$(stat -c %s "$PACK")
flip_byte "$PACK" $((SIZE / 2))
expect_fail "$COFFER" -r "$T/flip" check --read-data
[ "$RC" -lt 128 ] || fail "check --read-data crashed on a damaged pack (exit $RC)"
names_it "$PACKID" "check --read-data, flipped byte"
# restoring fails loudly instead of writing wrong data.  Which file the
# flipped byte hit depends on the pack's (random) blob order: the largest
# pack may hold the end of big and the start of mid (8 MiB packs), so the whole snapshot
# is restored and each file that did not come back intact must be named.
expect_fail "$COFFER" -r "$T/flip" restore latest --target "$T/flip-restore"
[ "$RC" -lt 128 ] || fail "restore crashed on a damaged pack (exit $RC)"
damaged=0
for f in big mid d/s1 d/s2 d/s3 d/s4 d/s5; do
	got=$T/flip-restore$S/$f
	cmp -s "$S/$f" "$got" 2> /dev/null && continue
	damaged=$((damaged + 1))
	# a restore that reports the error may leave nothing or a marked file; it
	# must not leave a complete-looking wrong file under the real name
	if [ -f "$got" ] && [ "$(stat -c %s "$got")" = "$(stat -c %s "$S/$f")" ]; then
		soft_fail "restore left a wrong $f of the right size under the real name"
	fi
	assert_contains "$T/err" "$S/$f" "restore names the file it could not restore ($f)"
done
[ "$damaged" -ge 1 ] || fail "the flipped byte damaged no file, yet restore failed"

# --- a pack's header and trailer (what names it in format 3) -----------------
# a flipped byte in the sealed header (just before the 4-byte trailer), and a
# trailer that points past the start of the pack: check --read-data names the
# pack either way
for where in header trailer; do
	copy "end-$where"
	PACK=$(find "$T/end-$where/data" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
	PACKID=$(basename "$PACK")
	SIZE=$(stat -c %s "$PACK")
	if [ "$where" = header ]; then
		flip_byte "$PACK" $((SIZE - 5))
	else
		"$PY" -c 'import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]) - 4)
    f.write(struct.pack("<I", int(sys.argv[2]) + 100))' "$PACK" "$SIZE"
	fi
	expect_fail "$COFFER" -r "$T/end-$where" check --read-data
	[ "$RC" -lt 128 ] || fail "check --read-data crashed on a damaged $where (exit $RC)"
	names_it "$PACKID" "check --read-data, damaged $where"
	assert_contains "$T/both" "damaged" "check --read-data, damaged $where"
done

# --- one valid pack stored under another's name -----------------------------
# every byte of it authenticates; only its name can tell (format 3: the hash
# of its header, which lists its blobs)
copy swap
set -- $(find "$T/swap/data" -type f -printf '%s %p\n' | sort -n | tail -n 2 | cut -d' ' -f2)
cp "$1" "$2"
expect_fail "$COFFER" -r "$T/swap" check --read-data
names_it "$(basename "$2")" "check --read-data, a pack under another's name"
assert_contains "$T/both" "do not match its name" "check --read-data, a pack under another's name"

# --- a truncated snapshot file ---------------------------------------------
copy trunc
SNAPFILE=$T/trunc/snapshots/$FIRST
truncate -s $(($(stat -c %s "$SNAPFILE") / 2)) "$SNAPFILE"
expect_fail "$COFFER" -r "$T/trunc" check
names_it "$FIRST" "check, truncated snapshot"
"$COFFER" -r "$T/trunc" snapshots > "$T/out" 2> "$T/err"
RC=$?
[ "$RC" -lt 128 ] || fail "snapshots crashed on a truncated snapshot (exit $RC)"
assert_contains "$T/out" "${SECOND:0:8}" "snapshots lists the intact snapshot"
grep -qF "${FIRST:0:8}" "$T/err" || { cat "$T/err" >&2; soft_fail "snapshots does not warn about the truncated one"; }
"$COFFER" -r "$T/trunc" --json snapshots > "$T/out" 2> "$T/err"
cp "$T/out" "$T/trunc.json"
assert_eq "$SECOND" "$(json_field "$T/trunc.json" "j[0]['id'] if len(j) == 1 else j")" \
	"snapshots --json with one truncated snapshot"
# the intact snapshot still restores
cof -r "$T/trunc" restore "${SECOND:0:8}" --target "$T/trunc-restore"
compare_trees "$S" "$T/trunc-restore$S"

# --- a deleted pack ----------------------------------------------------------
copy del
PACK=$(find "$T/del/data" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
PACKID=$(basename "$PACK")
rm "$PACK"
expect_fail "$COFFER" -r "$T/del" check
names_it "$PACKID" "check, deleted pack"
grep -qi "missing\|not found\|no such\|does not exist" "$T/both" ||
	soft_fail "check does not say the pack is missing"

# --- a damaged index file ----------------------------------------------------
copy idx
IDX=$(find "$T/idx/index" -type f | head -n 1)
[ -n "$IDX" ] || fail "no index file in $T/idx/index"
IDXID=$(basename "$IDX")
"$PY" - "$IDX" <<'EOF'
import sys, os
p = sys.argv[1]
n = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(n // 2)
    b = f.read(1)
    f.seek(n // 2)
    f.write(bytes([b[0] ^ 0x80]))
EOF
expect_fail "$COFFER" -r "$T/idx" check
[ "$RC" -lt 128 ] || fail "check crashed on a damaged index (exit $RC)"
names_it "$IDXID" "check, damaged index file"

# --- the healthy repository is still healthy (copies were independent) -------
cof -r "$R" check --read-data
e2e_done
