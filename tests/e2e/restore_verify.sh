#!/bin/bash
# restore_verify.sh - `restore --verify` reads every restored file back and
# compares it with the snapshot: it passes after a good restore, and it
# catches a file that differs (kept by --overwrite never).  A damaged pack
# makes the restore name every file it could not restore and exit 3, while
# everything else is restored and no temporary file is left.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S/a" "$S/b"
for i in 1 2 3 4 5 6; do randfile "$S/a/f$i" $((i * 700000)); done
echo tiny > "$S/b/tiny"
: > "$S/b/empty"
init_repo "$T/repo"
cof -r "$T/repo" backup "$S"

R=$T/restore
cof -r "$T/repo" restore latest --target "$R" --verify
assert_contains "$T/out" "verified 8 files" "verify summary"
compare_trees "$S" "$R$S"

# a file that differs from the snapshot (same size) and is kept: verify says so
flip_byte "$R$S/a/f3" 1000 # always a change (writing 'X' was none when the byte was 'X': 1 run in 256)
expect_exit 3 "$COFFER" -r "$T/repo" restore latest --target "$R" --overwrite never --verify
assert_contains "$T/err" "$R$S/a/f3: verify" "verify names the altered file"
grep -F "$R$S/a/f" "$T/err" | grep -vF "$R$S/a/f3" && soft_fail "verify blamed other files"
# the default (if-changed) repairs it, and verify then passes
cof -r "$T/repo" restore latest --target "$R" --verify
compare_trees "$S" "$R$S"

# --- a damaged pack ---
# The files' data went into packs; flip a byte in the middle of the biggest
# pack so that some blobs fail authentication.
pack=$(find "$T/repo/data" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
size=$(stat -c %s "$pack")
chmod u+w "$pack"
"$PY" - "$pack" "$((size / 3))" <<'EOF'
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x55]))
EOF
R2=$T/restore2
expect_exit 3 "$COFFER" -r "$T/repo" restore latest --target "$R2"
assert_contains "$T/err" "could not restore" "summary of failures"
bad=0
for f in "$S"/a/f* "$S"/b/tiny "$S"/b/empty; do
	rf=$R2$f
	if grep -qF -- "  $rf" "$T/err"; then
		bad=$((bad + 1))
		[ -e "$rf" ] && soft_fail "$rf was named as failed but exists (a half-written file?)"
	else
		cmp -s "$f" "$rf" || soft_fail "$rf is neither restored nor named as failed"
	fi
done
[ "$bad" -ge 1 ] || soft_fail "no file was named as failed after damaging a pack"
[ "$bad" -lt 8 ] || soft_fail "every file failed: the rest was not restored"
note "$bad files named as failed, the others restored"
[ -z "$(find "$R2" -name '.coffer-tmp-*')" ] || soft_fail "temporary files left after failures"
sed 's/^/    /' "$T/err" >&2
e2e_done
