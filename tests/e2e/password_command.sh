#!/bin/bash
# password_command.sh - --password-command / COFFER_PASSWORD_COMMAND (issue
# 22 item 6, restic's --password-command): the password is the first line
# the command prints; the other lines, and a trailing CR, are not part of
# it; a failing command, an empty answer, an endless one and a wrong
# password are each refused in one line with exit 1 (12 for the wrong
# password, as with a password file); --password-file beside it is refused;
# COFFER_PASSWORD_FILE wins over COFFER_PASSWORD_COMMAND, as restic's order.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/src"
echo data > "$T/src/f"
cof -r "$R" backup "$T/src"
unset COFFER_PASSWORD_FILE COFFER_PASSWORD
PW=$(cat "$PWFILE")

expect_exit 0 "$COFFER" -r "$R" --password-command "cat '$PWFILE'" snapshots
assert_contains "$T/out" "1 snapshots" "--password-command"
expect_exit 0 env COFFER_PASSWORD_COMMAND="printf '%s\r\nsecond line\n' '$PW'" "$COFFER" -r "$R" snapshots
assert_contains "$T/out" "1 snapshots" "COFFER_PASSWORD_COMMAND, first line only"
# the command may read the terminal: its stdin is coffer's
expect_exit 0 "$COFFER" -r "$R" --password-command "read -r p; echo \"\$p\"" snapshots <<< "$PW"
assert_contains "$T/out" "1 snapshots" "a command reading stdin"

expect_exit 1 "$COFFER" -r "$R" --password-command "exit 3" snapshots
assert_contains "$T/err" "exited with status 3" "a failing command"
assert_one_line_err "a failing command"
expect_exit 1 "$COFFER" -r "$R" --password-command "true" snapshots
assert_contains "$T/err" "no password" "an empty answer"
expect_exit 1 timeout 20 "$COFFER" -r "$R" --password-command "yes '$PW'" snapshots
assert_contains "$T/err" "not a password" "an endless answer"
expect_exit 12 "$COFFER" -r "$R" --password-command "echo wrong" snapshots
assert_contains "$T/err" "wrong password" "a wrong password"
expect_exit 1 "$COFFER" -r "$R" --password-command "cat '$PWFILE'" --password-file "$PWFILE" snapshots
assert_contains "$T/err" "not both" "both options"
expect_exit 0 env COFFER_PASSWORD_FILE="$PWFILE" COFFER_PASSWORD_COMMAND="echo wrong" "$COFFER" -r "$R" snapshots
assert_contains "$T/out" "1 snapshots" "COFFER_PASSWORD_FILE before COFFER_PASSWORD_COMMAND"
# and it serves every command, a writing one too
expect_exit 0 "$COFFER" -r "$R" --password-command "cat '$PWFILE'" backup "$T/src"
expect_exit 0 "$COFFER" -r "$R" --password-command "cat '$PWFILE'" --json snapshots
assert_eq 2 "$(json_field "$T/out" 'len(j)')" "snapshots after a backup with --password-command"
# a restic user's variables are named with the coffer name to use
expect_exit 1 setsid env RESTIC_PASSWORD_FILE="$PWFILE" "$COFFER" -r "$R" snapshots < /dev/null
assert_contains "$T/err" "COFFER_PASSWORD_FILE" "hint for RESTIC_PASSWORD_FILE"
assert_contains "$T/err" "RESTIC_PASSWORD_FILE is set" "hint for RESTIC_PASSWORD_FILE"
expect_exit 1 env -u COFFER_REPOSITORY RESTIC_REPOSITORY="$R" "$COFFER" snapshots
assert_contains "$T/err" "RESTIC_REPOSITORY is set" "hint for RESTIC_REPOSITORY"
e2e_done
