#!/bin/bash
# corrupt.sh - corruption (issue "Reliability"): for each kind of repository
# object (pack, index, snapshot, key, config) x (a flipped byte, truncated to
# half, deleted), on a fresh copy of a healthy repository:
#   - `check --read-data` exits non-zero naming the damaged object, and for a
#     pack or an index what depends on it (the snapshot, the file);
#   - every snapshot is restored: those the damage does not touch bit-exact
#     with exit 0, the damaged one with a non-zero exit naming what it could
#     not restore, everything else of it still bit-exact;
#   - nothing crashes: no exit >= 128, no sanitizer report.
# The repository: snapshot A (a1, d/a2), snapshot B (A's files + b1); the
# damaged pack, index and snapshot are B's own, so A must come back whole.
# Two passwords open it: the key of the first is the damaged one, so the
# second must still open everything.
# One case cannot be detected and is reported as such: a deleted snapshot
# file looks exactly like `forget` (the repository keeps no list of
# snapshots); the other snapshots restore.
. "$(dirname "$0")/lib.sh"
e2e_setup
S=$T/src
mkdir -p "$S/d"
randfile "$S/a1" 300000
echo "a2" > "$S/d/a2"
R=$T/repo
init_repo "$R"
KEY1=./keys/$(ls "$R/keys")
printf 'second password\n' > "$T/pw2"
cof -r "$R" key add --new-password-file "$T/pw2"
list() { (cd "$R" && find . -type f ! -path './locks/*' | sort); }
cof -r "$R" backup -q "$S"
A=$(latest_id "$R")
cp -a "$S" "$T/copyA"
list > "$T/l1"
randfile "$S/b1" 300000
cof -r "$R" backup -q "$S"
B=$(latest_id "$R")
cp -a "$S" "$T/copyB"
list > "$T/l2"
comm -13 "$T/l1" "$T/l2" > "$T/new"
B_PACK=$(grep '^./data/' "$T/new" | while read -r f; do echo "$(stat -c %s "$R/$f") $f"; done |
	sort -n | tail -1 | cut -d' ' -f2)
B_INDEX=$(grep '^./index/' "$T/new")
B_SNAP=./snapshots/$B
[ -n "$B_PACK" ] && [ -n "$B_INDEX" ] && [ -f "$R/$B_SNAP" ] && [ -f "$R/$KEY1" ] ||
	fail "cannot find B's pack/index/snapshot or the first key"
cof -r "$R" check --read-data

cases=0 detected=0 undetectable=0 restores=0

# run NAME CMD...: stdout+stderr in $T/both, exit code in $RC; a crash or a
# sanitizer report is a failure
run()
{
	local name=$1
	shift
	"$@" > "$T/out" 2> "$T/err"
	RC=$?
	cat "$T/out" "$T/err" > "$T/both"
	[ "$RC" -lt 128 ] || soft_fail "$name: $* crashed (exit $RC): $(tail -3 "$T/err")"
	if grep -qE 'Sanitizer|runtime error:' "$T/err"; then
		sed 's/^/    /' "$T/err" | head -20 >&2
		soft_fail "$name: sanitizer report from $*"
	fi
}
names() # NAME STRING WHAT: the last command's output names STRING
{
	grep -qF -- "$2" "$T/both" || { sed 's/^/    /' "$T/both" >&2; soft_fail "$1: $3 ('$2') not named"; }
}

damage() # KIND FILE: flip a byte (inside the sealed data of a key), truncate, delete
{
	case $1 in
	flip) "$PY" - "$2" <<'EOF' ;;
import os, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.index(b'"data": "') + 20 if b'"data": "' in b else len(b) // 2
b[i] ^= 0x01
open(p, "wb").write(bytes(b))
EOF
	trunc) truncate -s $(($(stat -c %s "$2") / 2)) "$2" ;;
	del) rm -f "$2" ;;
	esac
}

# restore_ok NAME REPO SNAP COPY [PWFILE]: restores, exit 0, bit-exact
restore_ok()
{
	rm -rf "$T/r"
	run "$1" "$COFFER" -r "$2" --password-file "${5:-$PWFILE}" restore "$3" --target "$T/r"
	if [ "$RC" != 0 ]; then
		sed 's/^/    /' "$T/both" >&2
		soft_fail "$1: unaffected snapshot ${3:0:8} does not restore (exit $RC)"
		return
	fi
	compare_trees "$4" "$T/r$S" > "$T/cmp" || { sed 's/^/    /' "$T/cmp" >&2; return; }
	restores=$((restores + 1))
}

for kind in pack index snapshot key config; do
	for how in flip trunc del; do
		name="$kind/$how"
		W=$T/w
		rm -rf "$W"
		cp -a "$R" "$W"
		case $kind in
		pack) f=$B_PACK ;; index) f=$B_INDEX ;; snapshot) f=$B_SNAP ;; key) f=$KEY1 ;; config) f=./config ;;
		esac
		damage "$how" "$W/$f"
		cases=$((cases + 1))
		id=$(basename "$f")

		run "$name" "$COFFER" -r "$W" check --read-data
		if [ "$RC" = 0 ]; then
			if [ "$name" = snapshot/del ]; then
				undetectable=$((undetectable + 1))
			else
				sed 's/^/    /' "$T/both" >&2
				soft_fail "$name: check passes on a damaged repository"
			fi
		else
			detected=$((detected + 1))
			grep -q '^coffer: ' "$T/err" || soft_fail "$name: check fails without a 'coffer:' line"
		fi
		case $name in
		pack/*)
			names "$name" "${id:0:16}" "the damaged pack"
			names "$name" "snapshot ${B:0:8}: file $S/b1" "the snapshot and file that need it"
			;;
		index/del)
			names "$name" "snapshot ${B:0:8}" "the snapshot that needed the index"
			names "$name" "${B_PACK##*/}" "the pack left without an index"
			;;
		index/*)
			names "$name" "index/$id" "the damaged index file"
			names "$name" "snapshot ${B:0:8}" "the snapshot that needed the index"
			;;
		snapshot/flip | snapshot/trunc) names "$name" "snapshots/$id" "the damaged snapshot" ;;
		key/trunc) names "$name" "$id" "the damaged key file" ;;
		config/*) names "$name" "config" "the damaged config" ;;
		esac

		case $kind in
		pack | index | snapshot)
			restore_ok "$name" "$W" "$A" "$T/copyA"
			rm -rf "$T/r"
			run "$name" "$COFFER" -r "$W" restore "$B" --target "$T/r"
			if [ "$RC" = 0 ]; then
				soft_fail "$name: restore of the damaged snapshot B exits 0"
			else
				grep -q '^coffer: ' "$T/err" || soft_fail "$name: restore fails without a 'coffer:' line"
			fi
			if [ "$kind" = pack ]; then
				# b1 is named, with the pack; a1 and d/a2 are restored bit-exact all the same
				names "$name" "$S/b1" "the file restore could not write"
				names "$name" "${id:0:16}" "the damaged pack (restore)"
				cmp -s "$S/a1" "$T/r$S/a1" && cmp -s "$S/d/a2" "$T/r$S/d/a2" ||
					soft_fail "$name: the files of B that do not need the damaged pack are not restored"
				[ -f "$T/r$S/b1" ] && cmp -s "$S/b1" "$T/r$S/b1" &&
					soft_fail "$name: b1 restored from a damaged pack?"
			fi
			;;
		key)
			# the damaged key no longer opens; the second password opens all
			run "$name" "$COFFER" -r "$W" restore "$A" --target "$T/r"
			[ "$RC" != 0 ] || soft_fail "$name: the damaged key still opens the repository"
			run "$name" "$COFFER" -r "$W" --password-file "$T/pw2" check --read-data
			[ "$RC" = 0 ] || { sed 's/^/    /' "$T/both" >&2; soft_fail "$name: check with the second key fails"; }
			restore_ok "$name" "$W" "$A" "$T/copyA" "$T/pw2"
			restore_ok "$name" "$W" "$B" "$T/copyB" "$T/pw2"
			;;
		config)
			run "$name" "$COFFER" -r "$W" restore "$A" --target "$T/r"
			[ "$RC" != 0 ] || soft_fail "$name: restore exits 0 without a config"
			names "$name" "config" "the damaged config (restore)"
			;;
		esac
	done
done
note "figures: corruptions detected by check $detected/$cases" \
	"($undetectable undetectable: a deleted snapshot file looks like forget)," \
	"$restores unaffected snapshots restored bit-exact, 0 crashes"
check_eq $((cases - undetectable)) "$detected" "corruptions detected"
e2e_done
