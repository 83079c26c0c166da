#!/bin/bash
# errors.sh - each failure a user can cause gives one clear line on stderr
# and restic's exit code: wrong password (12), no repository (10), init
# twice, unreadable source files (3, named, snapshot still written), a
# missing backup path (1), a read-only repository, no password and no
# terminal, and no way to give the password on the command line.
. "$(dirname "$0")/lib.sh"
e2e_setup

S=$T/src
mkdir -p "$S/dir"
echo a > "$S/a"
echo b > "$S/dir/b"
R=$T/repo
init_repo "$R"
cof -r "$R" backup "$S"

# --- wrong password: 12, promptly, one line --------------------------------
echo "not the password" > "$T/wrong"
start=$(date +%s%N)
expect_exit 12 "$COFFER" -r "$R" --password-file "$T/wrong" snapshots
ms=$((($(date +%s%N) - start) / 1000000))
assert_contains "$T/err" "wrong password" "wrong password message"
assert_one_line_err "wrong password"
[ ! -s "$T/out" ] || fail "wrong password printed something on stdout"
assert_le "$ms" 5000 "milliseconds to reject a wrong password"
COFFER_PASSWORD="not the password" expect_exit 12 env -u COFFER_PASSWORD_FILE "$COFFER" -r "$R" snapshots
assert_contains "$T/err" "wrong password" "wrong password via COFFER_PASSWORD"
# the right one via COFFER_PASSWORD works
COFFER_PASSWORD="correct horse battery staple" expect_exit 0 env -u COFFER_PASSWORD_FILE "$COFFER" -r "$R" snapshots

# --- missing repository: 10, naming the location --------------------------
expect_exit 10 "$COFFER" -r "$T/no-such-repo" snapshots
assert_contains "$T/err" "$T/no-such-repo" "missing repository names the location"
assert_one_line_err "missing repository"
[ ! -e "$T/no-such-repo" ] || fail "opening a missing repository created it"
mkdir "$T/empty-dir"
expect_exit 10 "$COFFER" -r "$T/empty-dir" backup "$S"
assert_one_line_err "directory that is not a repository"
expect_exit 10 "$COFFER" -r "$T/no-such-repo" backup "$S"
# no repository given at all
expect_fail "$COFFER" snapshots
assert_contains "$T/err" "COFFER_REPOSITORY" "no -r and no COFFER_REPOSITORY"

# --- init twice --------------------------------------------------------------
cp "$R/config" "$T/config.before"
echo "another password" > "$T/other"
expect_fail "$COFFER" -r "$R" --password-file "$T/other" init --kdf-passes 1 --kdf-memory 64
assert_contains "$T/err" "already exists" "init twice"
assert_one_line_err "init twice"
cmp -s "$R/config" "$T/config.before" || fail "init twice rewrote the config"
assert_eq 1 "$(ls "$R/keys" | wc -l)" "keys after a refused init"
cof -r "$R" snapshots

# --- nonexistent backup path: 1, named, nothing written ---------------------
nsnap=$(ls "$R/snapshots" | wc -l)
expect_exit 1 "$COFFER" -r "$R" backup "$S" "$T/does-not-exist"
assert_contains "$T/err" "$T/does-not-exist" "missing backup path is named"
assert_one_line_err "missing backup path"
assert_eq "$nsnap" "$(ls "$R/snapshots" | wc -l)" "snapshots after a failed backup"

# --- no password and no terminal --------------------------------------------
expect_fail env -u COFFER_PASSWORD -u COFFER_PASSWORD_FILE setsid -w "$COFFER" -r "$R" snapshots < /dev/null
assert_contains "$T/err" "COFFER_PASSWORD_FILE" "no password, no TTY"
assert_one_line_err "no password"
# a password file that does not exist is named
expect_fail "$COFFER" -r "$R" --password-file "$T/no-such-pw" snapshots
assert_contains "$T/err" "$T/no-such-pw" "missing password file is named"
: > "$T/empty-pw"
expect_fail "$COFFER" -r "$R" --password-file "$T/empty-pw" snapshots
assert_contains "$T/err" "empty" "empty password file"

# --- the password never comes from argv -------------------------------------
SECRET="correct horse battery staple"
for opt in --password -p --pass --passwd; do
	expect_fail env -u COFFER_PASSWORD_FILE setsid -w "$COFFER" -r "$R" "$opt" "$SECRET" snapshots < /dev/null
	assert_not_contains "$T/out" "${S##*/}" "'$opt PASSWORD' opened the repository"
	[ "$RC" -lt 128 ] || fail "'$opt' crashed (exit $RC)"
	# and the secret is not echoed into logs as if it were a file name
	if grep -qF "$SECRET" "$T/err"; then
		sed 's/^/    /' "$T/err" >&2
		soft_fail "'$opt SECRET' is taken as an abbreviation of --password-file: the secret is echoed on stderr"
	fi
done
expect_fail env -u COFFER_PASSWORD_FILE setsid -w "$COFFER" -r "$R" "--password=$SECRET" snapshots < /dev/null
if grep -qF "$SECRET" "$T/err"; then
	soft_fail "'--password=SECRET' echoes the secret on stderr"
fi

# --- as an unprivileged user: unreadable files, read-only repository ---------
if [ "$(id -u)" = 0 ]; then
	if ! command -v setpriv > /dev/null; then
		note "root without setpriv: unreadable-file and read-only tests skipped"
		e2e_done
	fi
	AS=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
	U=$T/user
	chmod 755 "$T"
	chmod 644 "$PWFILE"
	mkdir "$U" && chown 65534:65534 "$U"
	if ! "${AS[@]}" "$COFFER" version > /dev/null 2>&1; then
		note "the coffer binary is not executable by uid 65534: unprivileged tests skipped"
		e2e_done
	fi
else
	AS=()
	U=$T/user
	mkdir "$U"
fi
as_user() { "${AS[@]}" "$@"; }

UR=$U/repo
export COFFER_CACHE_DIR=$U/cache
US=$U/src
as_user mkdir -p "$US/locked-dir" "$US/ok"
as_user sh -c "echo fine > '$US/ok/fine'; echo secret > '$US/unreadable file'; echo x > '$US/locked-dir/inner'"
as_user chmod 000 "$US/unreadable file" "$US/locked-dir"
expect_exit 0 "${AS[@]}" "$COFFER" -r "$UR" init --kdf-passes 1 --kdf-memory 64
expect_exit 3 "${AS[@]}" "$COFFER" -r "$UR" backup "$US"
assert_contains "$T/err" "$US/unreadable file" "the unreadable file is named"
assert_contains "$T/err" "$US/locked-dir" "the unreadable directory is named"
grep -v -e "unreadable file" -e "locked-dir" -e "could not be read" "$T/err" > "$T/err.rest"
[ ! -s "$T/err.rest" ] || { cat "$T/err.rest" >&2; fail "unexpected stderr lines on a partial backup"; }
expect_exit 0 "${AS[@]}" "$COFFER" -r "$UR" --json snapshots
cp "$T/out" "$T/us.json"
assert_eq 1 "$(json_field "$T/us.json" "len(j)")" "snapshot written despite unreadable files"
expect_exit 0 "${AS[@]}" "$COFFER" -r "$UR" restore latest --target "$U/restored"
[ "$(cat "$U/restored$US/ok/fine")" = fine ] || fail "readable file missing from the partial snapshot"
expect_exit 0 "${AS[@]}" "$COFFER" -r "$UR" check

# read-only repository: a clean error, no crash, nothing half-written
as_user chmod -R a-w "$UR"
find "$UR" -type f | sort | xargs md5sum > "$T/ro.before"
expect_fail "${AS[@]}" "$COFFER" -r "$UR" backup "$US/ok"
[ "$RC" -lt 128 ] || fail "backup into a read-only repository crashed (exit $RC)"
assert_contains "$T/err" "permission denied" "read-only repository"
assert_one_line_err "read-only repository"
find "$UR" -type f | sort | xargs md5sum > "$T/ro.after"
diff "$T/ro.before" "$T/ro.after" >&2 || fail "a read-only repository changed"
# reading still works without write access
expect_exit 0 "${AS[@]}" "$COFFER" -r "$UR" snapshots
expect_exit 0 "${AS[@]}" "$COFFER" -r "$UR" ls latest
expect_exit 0 "${AS[@]}" "$COFFER" -r "$UR" restore latest --target "$U/restored-ro" --include "$US/ok"
as_user chmod -R u+w "$UR"

e2e_done
