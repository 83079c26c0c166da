#!/bin/bash
# restore_nonroot.sh - a developer restores production data as an ordinary
# user: owners that cannot be set are a warning, not a failure (exit 0, all
# content and modes restored, the files belong to the user).  Run as root,
# the test backs up files owned by several users, then restores as nobody
# through setpriv.
. "$(dirname "$0")/lib.sh"
e2e_setup
[ "$(id -u)" = 0 ] || skip "needs root to make files owned by other users"
command -v setpriv > /dev/null || skip "setpriv not installed"

S=$T/src
mkdir -p "$S/d"
randfile "$S/a" 100000 && chown 1234:4321 "$S/a"
echo b > "$S/d/b" && chown 999:999 "$S/d/b" "$S/d"
ln -s a "$S/link" && chown -h 1234:1234 "$S/link"
chmod 0640 "$S/a"
init_repo "$T/repo"
cof -r "$T/repo" backup "$S"

chmod 0755 "$T"
chmod -R a+rX "$T/repo"
chmod 0644 "$PWFILE"
mkdir "$T/dev" && chown 65534:65534 "$T/dev"
as_nobody()
{
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}
as_nobody true 2> /dev/null || skip "setpriv cannot switch to nobody here"
expect_exit 0 as_nobody "$COFFER" -r "$T/repo" restore latest --target "$T/dev/restore"
assert_contains "$T/err" "not running as root" "the ownership warning"
assert_not_contains "$T/err" "error" "errors for ownership"
R=$T/dev/restore$S
cmp "$S/a" "$R/a" || soft_fail "content of a"
check_eq 640 "$(stat -c %a "$R/a")" "mode of a"
check_eq 65534 "$(stat -c %u "$R/a")" "owner of a (the restoring user)"
check_eq a "$(readlink "$R/link")" "symlink target"
check_eq b "$(cat "$R/d/b")" "content of d/b"
# a second run as nobody: nothing rewritten, still exit 0
expect_exit 0 as_nobody "$COFFER" -r "$T/repo" --json restore latest --target "$T/dev/restore"
check_eq 0 "$(json_field "$T/out" 'j["files_restored"]')" "files rewritten on the second run"
e2e_done
