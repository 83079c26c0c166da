#!/bin/bash
# keys.sh - several passwords per repository: key add, both passwords open
# it, key list marks the one in use, removing the key in use is refused,
# removing the other makes its password fail (12), key passwd replaces the
# password (old fails with 12, new works), data stays readable throughout.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S"
randfile "$S/f" 100000
R=$T/repo
P1=$PWFILE
P2=$T/pw2
P3=$T/pw3
echo "second password" > "$P2"
echo "third password" > "$P3"
KDF=(--kdf-passes 1 --kdf-memory 64)
init_repo "$R"
cof -r "$R" backup "$S"

keys_json() # PWFILE -> $T/keys.json
{
	expect_exit 0 "$COFFER" -r "$R" --password-file "$1" --json key list
	cp "$T/out" "$T/keys.json"
}

keys_json "$P1"
assert_eq 1 "$(json_field "$T/keys.json" "len(j)")" "keys after init"
K1=$(json_field "$T/keys.json" "j[0]['id']")

# --- key add --------------------------------------------------------------
cof -r "$R" --password-file "$P1" key add --new-password-file "$P2" "${KDF[@]}"
keys_json "$P1"
assert_eq 2 "$(json_field "$T/keys.json" "len(j)")" "keys after key add"
assert_eq 1 "$(json_field "$T/keys.json" "sum(1 for k in j if k['current'])")" "keys marked current"
assert_eq "$K1" "$(json_field "$T/keys.json" "[k['id'] for k in j if k['current']][0]")" "current key with password 1"
K2=$(json_field "$T/keys.json" "[k['id'] for k in j if not k['current']][0]")
keys_json "$P2"
assert_eq "$K2" "$(json_field "$T/keys.json" "[k['id'] for k in j if k['current']][0]")" "current key with password 2"

# both passwords open the repository and read the data
for p in "$P1" "$P2"; do
	cof -r "$R" --password-file "$p" restore latest --target "$T/r-$(basename "$p")"
	cmp -s "$S/f" "$T/r-$(basename "$p")$S/f" || fail "restore with $(basename "$p") differs"
done
# the plain listing marks the key in use with '*'
cof -r "$R" --password-file "$P2" key list
grep -q "^\*${K2:0:8}" "$T/out" || { cat "$T/out" >&2; fail "key list does not mark the current key with *"; }
assert_eq 1 "$(grep -c '^\*' "$T/out")" "lines marked * in key list"
grep -q "^ ${K1:0:8}" "$T/out" || fail "key list does not show the other key"

# --- removing the key in use is refused ------------------------------------
expect_fail "$COFFER" -r "$R" --password-file "$P1" key remove "${K1:0:8}"
assert_one_line_err "removing the current key"
keys_json "$P1"
assert_eq 2 "$(json_field "$T/keys.json" "len(j)")" "keys after a refused remove"
# an unknown key is an error
expect_fail "$COFFER" -r "$R" --password-file "$P1" key remove ffffffffff
assert_eq 2 "$(ls "$R/keys" | wc -l)" "key files after removing an unknown key"

# --- removing the other key ------------------------------------------------
cof -r "$R" --password-file "$P1" key remove "${K2:0:8}"
keys_json "$P1"
assert_eq 1 "$(json_field "$T/keys.json" "len(j)")" "keys after key remove"
expect_exit 12 "$COFFER" -r "$R" --password-file "$P2" snapshots
assert_contains "$T/err" "wrong password" "password of a removed key"

# --- key passwd --------------------------------------------------------------
cof -r "$R" --password-file "$P1" key passwd --new-password-file "$P3" "${KDF[@]}"
expect_exit 12 "$COFFER" -r "$R" --password-file "$P1" snapshots
assert_contains "$T/err" "wrong password" "old password after key passwd"
keys_json "$P3"
assert_eq 1 "$(json_field "$T/keys.json" "len(j)")" "keys after key passwd"
K3=$(json_field "$T/keys.json" "j[0]['id']")
[ "$K3" != "$K1" ] || fail "key passwd kept the old key file"
cof -r "$R" --password-file "$P3" restore latest --target "$T/r-after-passwd"
cmp -s "$S/f" "$T/r-after-passwd$S/f" || fail "restore after key passwd differs"
# writing works with the new password, and the old snapshots stay readable
cof -r "$R" --password-file "$P3" backup "$S"
cof -r "$R" --password-file "$P3" check --read-data
e2e_done
