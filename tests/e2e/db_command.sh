#!/bin/bash
# db_command.sh - `backup --stdin-from-command CMD --stdin-filename NAME`:
# the command's stdout is stored byte for byte as NAME (sha256 after a normal
# restore), next to a volume path in the same snapshot; a command that exits
# non-zero or is killed by a signal fails the backup with exit 1, a one-line
# message naming the command, and NO snapshot (the count is unchanged, the
# repository still checks clean, the earlier snapshot still restores).
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/vol" && echo "volume file" > "$T/vol/readme"

# a pg_dump-like command: a header, 24 MiB of binary data (every byte value,
# no trailing newline), a trailer; written in pieces with pauses so the
# stream is consumed while the command still runs
randfile "$T/payload" $((24 << 20))
cat > "$T/fake_pg_dump" <<'EOF'
#!/bin/sh
printf -- '-- PostgreSQL database dump\nSET client_encoding = '"'"'UTF8'"'"';\n'
head -c 8388608 "$1"; sleep 0.2
tail -c +8388609 "$1"; sleep 0.2
printf '\n-- PostgreSQL database dump complete\n'
EOF
chmod +x "$T/fake_pg_dump"
"$T/fake_pg_dump" "$T/payload" | sha256sum | cut -d' ' -f1 > "$T/want.sha"

snapcount()
{
	"$COFFER" -r "$R" --json snapshots > "$T/snaps.json" || fail "snapshots --json"
	json_field "$T/snaps.json" 'len(j)'
}

cof -r "$R" backup "$T/vol" --stdin-from-command "$T/fake_pg_dump $T/payload" \
	--stdin-filename postgres/x.sql
cof -r "$R" ls latest
assert_contains "$T/out" "/postgres/x.sql" "ls shows the command's file"
assert_contains "$T/out" "$T/vol/readme" "ls shows the volume in the same snapshot"
check_eq 1 "$(snapcount)" "snapshots after the first backup"

cof -r "$R" restore latest --target "$T/r1"
check_eq "$(cat "$T/want.sha")" "$(sha256sum < "$T/r1/postgres/x.sql" | cut -d' ' -f1)" \
	"sha256 of the restored command output"
check_eq "volume file" "$(cat "$T/r1/$T/vol/readme")" "volume file restored"

# empty output is a valid (empty) file
cof -r "$R" backup --stdin-from-command 'true' --stdin-filename empty.sql
cof -r "$R" restore latest --target "$T/r2"
[ -f "$T/r2/empty.sql" ] && [ ! -s "$T/r2/empty.sql" ] || soft_fail "empty output not restored as an empty file"
check_eq 2 "$(snapcount)" "snapshots after the empty-output backup"

# non-zero exit after 8 MiB of output: exit 1, no snapshot
expect_exit 1 "$COFFER" -r "$R" backup "$T/vol" \
	--stdin-from-command "head -c 8388608 $T/payload; echo 'pg_dump: error: connection lost' >&2; exit 3" \
	--stdin-filename postgres/x.sql
assert_contains "$T/err" "exited with status 3" "non-zero exit named"
assert_contains "$T/err" "no snapshot" "non-zero exit: says no snapshot was written"
assert_contains "$T/err" "pg_dump: error: connection lost" "the command's own stderr passes through"
check_eq 2 "$(snapcount)" "snapshots after a failing command"

# killed by a signal (the shell kills itself mid-stream)
expect_exit 1 "$COFFER" -r "$R" backup \
	--stdin-from-command "head -c 4194304 $T/payload; kill -KILL \$\$; echo unreachable" \
	--stdin-filename postgres/x.sql
assert_contains "$T/err" "killed by signal 9" "signal named"
assert_one_line_err "killed command"
check_eq 2 "$(snapcount)" "snapshots after a killed command"

# a command that does not exist: sh exits 127
expect_exit 1 "$COFFER" -r "$R" backup --stdin-from-command "/nonexistent/pg_dump -Fp db" \
	--stdin-filename postgres/x.sql
assert_contains "$T/err" "status 127" "missing command"
check_eq 2 "$(snapcount)" "snapshots after a missing command"

# option errors
expect_exit 1 "$COFFER" -r "$R" backup --stdin-from-command "echo hi"
assert_contains "$T/err" "--stdin-filename" "command without a file name"
expect_exit 1 "$COFFER" -r "$R" backup "$T/vol" --stdin-filename x.sql
assert_contains "$T/err" "--stdin-from-command" "file name without a command"
expect_exit 1 "$COFFER" -r "$R" backup --stdin-from-command "echo hi" --stdin-filename ../x.sql
assert_contains "$T/err" "not a usable file name" "file name with .."
check_eq 2 "$(snapcount)" "snapshots after option errors"

# the failed runs left the repository consistent and the first snapshot whole
cof -r "$R" check --read-data
first=$(json_field "$T/snaps.json" 'sorted(j, key=lambda s: s["time"])[0]["id"]')
cof -r "$R" restore "$first" --target "$T/r3"
check_eq "$(cat "$T/want.sha")" "$(sha256sum < "$T/r3/postgres/x.sql" | cut -d' ' -f1)" \
	"first snapshot still restores after the failed runs"

e2e_done
