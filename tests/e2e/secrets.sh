#!/bin/bash
# secrets.sh - the password and the master key stay secret (issue
# "Reliability"):
#   - never in argv: /proc/PID/cmdline of a running coffer, and there is no
#     option that takes the password itself;
#   - never printed: stdout+stderr of failing commands (wrong password, bad
#     repository, missing snapshot, damaged config, -v) with the password
#     given by file and by COFFER_PASSWORD;
#   - files coffer creates in the repository are 0600 (directories 0700);
#   - the repository's bytes contain neither the password nor the master key;
#   - a core dump (gcore) of a running backup contains neither the password
#     nor the master key (keys live in sodium_malloc memory, which is
#     MADV_DONTDUMP; the password file is read without stdio and wiped).
# The master key is recovered from the key file with libsodium through
# python's ctypes, exactly as coffer does (Argon2id, XChaCha20-Poly1305).
. "$(dirname "$0")/lib.sh"
e2e_setup
PASSWORD='Zq8-secret-horse-7741'
printf '%s\n' "$PASSWORD" > "$PWFILE"
R=$T/repo
S=$T/src
mkdir -p "$S"
randfile "$S/a" 400000
echo hello > "$S/b"
init_repo "$R"
cof -r "$R" backup -q "$S"

# contains FILE: FILE holds the password or the master key (raw or hex)
MASTER_HEX=$("$PY" - "$R" "$PASSWORD" <<'EOF'
import base64, ctypes, ctypes.util, glob, json, sys
repo, pw = sys.argv[1], sys.argv[2].encode()
so = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
assert so.sodium_init() >= 0
kf = json.load(open(glob.glob(repo + "/keys/*")[0]))
salt = base64.b64decode(kf["salt"])
sealed = base64.b64decode(kf["data"])
kek = ctypes.create_string_buffer(32)
so.crypto_pwhash.argtypes = [ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_ulonglong,
                             ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_size_t, ctypes.c_int]
assert so.crypto_pwhash(kek, 32, pw, len(pw), salt, kf["opslimit"], kf["memlimit"], 2) == 0
npub, c = sealed[:24], sealed[24:]
m = ctypes.create_string_buffer(len(c))
mlen = ctypes.c_ulonglong(0)
ad = b"coffer key v1"
f = so.crypto_aead_xchacha20poly1305_ietf_decrypt
f.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_void_p, ctypes.c_char_p,
              ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_char_p]
assert f(m, ctypes.byref(mlen), None, c, len(c), ad, len(ad), npub, kek) == 0
print(m.raw[:mlen.value].hex())
EOF
) || fail "cannot recover the master key from the key file (libsodium via ctypes)"
[ ${#MASTER_HEX} -ge 64 ] || fail "master key too short: $MASTER_HEX"
found_in() # FILE WHAT: soft_fail if FILE holds the password or the master key
{
	"$PY" - "$1" "$PASSWORD" "$MASTER_HEX" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
pw, mk = sys.argv[2].encode(), bytes.fromhex(sys.argv[3])
hits = [w for w, b in (("password", pw), ("master key", mk), ("master key (hex)", sys.argv[3].encode()))
        if b in data]
if hits:
    print(", ".join(hits))
sys.exit(1 if hits else 0)
EOF
	[ $? = 0 ] || soft_fail "$2 holds a secret"
}
checks=0

# --- the repository's bytes
find "$R" -type f | while read -r f; do cat "$f"; done > "$T/allrepo"
found_in "$T/allrepo" "the repository"
checks=$((checks + 1))
bad=$(find "$R" \( -type f ! -perm 0600 \) -o \( -type d ! -perm 0700 \) -printf '%m %p\n')
[ -z "$bad" ] || soft_fail "repository files not 0600 / directories not 0700: $bad"
checks=$((checks + 1))

# --- no option takes the password itself
expect_fail "$COFFER" -r "$R" --password "$PASSWORD" snapshots
cat "$T/out" "$T/err" > "$T/o"
found_in "$T/o" "the error for --password"
checks=$((checks + 1))

# --- error messages, with the password from a file and from the environment
n=0
for how in file env; do
	for args in "-r $T/nope snapshots" "-r $R restore deadbeef --target $T/x" \
		"-r $R -v backup $T/missing" "-r $R -v check" "-r $R key list" \
		"-r fault:$R -v backup $S"; do
		n=$((n + 1))
		echo "change $n" > "$S/b"
		if [ $how = file ]; then
			COFFER_FAULTS=put=2 "$COFFER" $args > "$T/o" 2>&1
		else
			COFFER_PASSWORD_FILE= COFFER_PASSWORD=$PASSWORD COFFER_FAULTS=put=2 "$COFFER" $args > "$T/o" 2>&1
		fi
		found_in "$T/o" "output of 'coffer $args' (password by $how)"
		checks=$((checks + 1))
	done
	# a wrong password is not echoed either
	printf 'wrong-%s\n' "$PASSWORD" > "$T/wrongpw"
	"$COFFER" -r "$R" --password-file "$T/wrongpw" snapshots > "$T/o" 2>&1
	grep -qF "wrong-" "$T/o" && soft_fail "a wrong password is echoed: $(cat "$T/o")"
	found_in "$T/o" "output for a wrong password"
	checks=$((checks + 1))
done
cof -r "$R" unlock

# a damaged config: the error names it, not the secrets
cp -a "$R" "$T/dmg"
flip_byte "$T/dmg/config" 40
"$COFFER" -r "$T/dmg" check > "$T/o" 2>&1
found_in "$T/o" "output for a damaged config"
checks=$((checks + 1))

# --- a running backup: argv, its lock file, and a core dump
randfile "$S/big" 40000000
"$COFFER" -r "$R" backup -q "$S" > /dev/null 2>&1 &
pid=$!
E2E_PIDS+=("$pid")
wait_for has_files "$R/locks" || fail "the backup took no lock"
kill -STOP "$pid"
tr '\0' ' ' < "/proc/$pid/cmdline" > "$T/cmdline"
found_in "$T/cmdline" "/proc/PID/cmdline"
checks=$((checks + 1))
bad=$(find "$R/locks" -type f ! -perm 0600 -printf '%m %p\n')
[ -z "$bad" ] || soft_fail "lock files not 0600: $bad"
cat "$R"/locks/* > "$T/lock"
found_in "$T/lock" "the lock file"
checks=$((checks + 1))
# gcore of a sanitizer build would write its terabytes of shadow mapping
# (a sparse file, but tens of GB really written): only plain builds dump
GCORE=
if command -v gcore > /dev/null; then
	case "$(ldd "$COFFER" 2>/dev/null)" in
	*libasan* | *libtsan* | *libubsan*) note "sanitizer build: core dump not checked" ;;
	*) GCORE=yes ;;
	esac
else
	note "gcore (gdb) not installed: core dump not checked"
fi
if [ -n "$GCORE" ]; then
	gcore -o "$T/core" "$pid" > "$T/gcore.out" 2>&1
	if [ -f "$T/core.$pid" ]; then
		found_in "$T/core.$pid" "a core dump of a running backup"
		grep -qaF "$S" "$T/core.$pid" || soft_fail "the core dump does not even hold the source path"
		checks=$((checks + 1))
		rm -f "$T/core.$pid"
	else
		soft_fail "gcore made no core dump: $(tail -2 "$T/gcore.out")"
	fi
fi
kill -CONT "$pid"
wait "$pid" || soft_fail "the backup that was stopped and dumped did not finish"

# control: with COFFER_PASSWORD the password is in the process environment,
# which a core dump holds (documented: prefer the _FILE form); the harness
# must see it there, or the core dump check above proves nothing
if [ -n "$GCORE" ]; then
	randfile "$S/big" 40000001
	COFFER_PASSWORD_FILE= COFFER_PASSWORD=$PASSWORD "$COFFER" -r "$R" backup -q "$S" > /dev/null 2>&1 &
	pid=$!
	E2E_PIDS+=("$pid")
	wait_for has_files "$R/locks" || fail "the backup took no lock"
	kill -STOP "$pid"
	gcore -o "$T/core" "$pid" > "$T/gcore.out" 2>&1
	kill -CONT "$pid"
	grep -qaF "$PASSWORD" "$T/core.$pid" ||
		soft_fail "control: the environment's password is not found in the core dump: the check is blind"
	rm -f "$T/core.$pid"
	wait "$pid" || soft_fail "the second dumped backup did not finish"
fi
# print-config shows every setting, but never a URL's password or token
whsec=whsec_$(head -c 24 /dev/urandom | base64)
env -i PATH="$PATH" COFFER_REPOSITORY="$R" COFFER_PASSWORD=$PASSWORD \
	COFFER_MARIADB='mariadb://root:Hunter2pw@db/shop,mariadb://b:Other9pw@db2/x' \
	COFFER_WEBHOOK_URL='https://hook:Whook7pw@hooks.example.com/ping?token=Tok3nvalue&n=1' \
	COFFER_WEBHOOK_SECRET="$whsec" "$COFFER" agent --print-config > "$T/pc.out" 2>&1 ||
	soft_fail "agent --print-config failed: $(tail -n 1 "$T/pc.out")"
for secret in "$PASSWORD" Hunter2pw Other9pw Whook7pw Tok3nvalue "$whsec"; do
	checks=$((checks + 1))
	grep -qF -- "$secret" "$T/pc.out" && soft_fail "agent --print-config shows a secret: ${secret:0:4}..."
done
grep -qF 'COFFER_MARIADB=mariadb://root:***@db/shop,mariadb://b:***@db2/x' "$T/pc.out" ||
	soft_fail "print-config does not show COFFER_MARIADB with its passwords as ***: $(grep COFFER_MARIADB= "$T/pc.out")"
grep -qF 'COFFER_WEBHOOK_URL=https://hook:***@hooks.example.com/ping?token=***&n=1' "$T/pc.out" ||
	soft_fail "print-config does not show the webhook URL redacted: $(grep COFFER_WEBHOOK_URL= "$T/pc.out")"
cof -r "$R" check --read-data
note "figures: $checks places checked for the password and the master key: none holds them"
e2e_done
