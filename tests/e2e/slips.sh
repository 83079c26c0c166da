#!/bin/bash
# slips.sh - no silent loss from a slip (issue 24): every user mistake below
# is refused with exit 1 and one line naming it, or the data is there.
#  - an option the command does not take (snapshots --keep-daily, --target,
#    -n/--dry-run where a command has no dry run; backup's own is
#    backup_dryrun.sh's);
#    'coffer COMMAND --help' lists only that command's options;
#  - restore --mariadb --rename OLD=NEW with an OLD the snapshot lacks (it
#    loaded the database under its own name, over the live one);
#  - a second --stdin-from-command/--stdin-filename pair (it replaced the
#    first): both are stored; an unpaired one is refused;
#  - restore --include PATH that matches nothing (0 files, exit 0);
#  - backup DIR --sqlite DIR/app.db --exclude '*.db' (the copy was dropped,
#    the job succeeded), the agent's COFFER_EXCLUDES likewise, and a
#    command's file inside a walked directory (left out by the walk).
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
S=$T/src
mkdir -p "$S/site/img" "$S/db/sub"
echo index > "$S/site/index.html"
echo logo > "$S/site/img/logo.png"
init_repo "$R"
cof -r "$R" backup "$S/site"

nsnaps()
{
	"$COFFER" -r "$R" --json snapshots > "$T/snaps.json" || fail "snapshots --json"
	json_field "$T/snaps.json" "len(j)"
}

# refused WHAT STRING... -- CMD...: exit 1, one line on stderr holding every
# STRING (case-insensitive); records a failure and goes on otherwise
refused()
{
	local what=$1 got
	shift
	local want=()
	while [ "$1" != "--" ]; do
		want+=("$1")
		shift
	done
	shift
	"$@" > "$T/out" 2> "$T/err"
	got=$?
	if [ "$got" != 1 ]; then
		sed 's/^/    /' "$T/out" "$T/err" | head -20 >&2
		soft_fail "$what: expected exit 1, got $got"
		return
	fi
	[ "$(wc -l < "$T/err")" -eq 1 ] || { sed 's/^/    /' "$T/err" >&2; soft_fail "$what: not one line on stderr"; }
	for s in "${want[@]}"; do
		grep -qiF -- "$s" "$T/err" || { sed 's/^/    /' "$T/err" >&2; soft_fail "$what: '$s' not named"; }
	done
}

# --- 1. options per command -------------------------------------------------
n0=$(nsnaps)
refused "snapshots --keep-daily" "snapshots" "--keep-daily" -- "$COFFER" -r "$R" snapshots --keep-daily 3
refused "snapshots --target" "snapshots" "--target" -- "$COFFER" -r "$R" snapshots --target "$T/x"
refused "ls --overwrite" "ls" "--overwrite" -- "$COFFER" -r "$R" ls latest --overwrite never
refused "forget --target" "forget" "--target" -- "$COFFER" -r "$R" forget --keep-last 1 --target "$T/x"
refused "snapshots --dry-run" "--dry-run" "snapshots" -- "$COFFER" -r "$R" snapshots --dry-run
refused "ls -n" "--dry-run" "ls" -- "$COFFER" -r "$R" ls -n latest
refused "backup --include" "backup" "--include" -- "$COFFER" -r "$R" backup --include /x "$S/site"
check_eq "$n0" "$(nsnaps)" "snapshots after the refused backups (none written)"
# the option is refused wherever it stands, also before the command
refused "--keep-daily before the command" "snapshots" "--keep-daily" -- \
	"$COFFER" --keep-daily 3 -r "$R" snapshots
# what the commands do take still works
expect_exit 0 "$COFFER" -r "$R" snapshots --host "$(hostname)" --json
expect_exit 0 "$COFFER" -r "$R" forget --keep-last 5 --dry-run
# abbreviations stay unknown options (a mistyped --password never echoed)
refused "abbreviated --pass" "unknown option --pass" -- "$COFFER" -r "$R" snapshots --pass secret
# COFFER_PARSE_ONLY sees the same
COFFER_PARSE_ONLY=1 expect_exit 0 "$COFFER" -r "$R" forget --keep-daily 3
COFFER_PARSE_ONLY=1 refused "parse only: snapshots --keep-daily" "--keep-daily" -- \
	"$COFFER" -r "$R" snapshots --keep-daily 3
# 'COMMAND --help' lists that command's options only
expect_exit 0 "$COFFER" snapshots --help
assert_contains "$T/out" "--host" "snapshots --help lists --host"
grep -qF -- "--keep-daily" "$T/out" && soft_fail "snapshots --help lists --keep-daily, which it does not take"
expect_exit 0 "$COFFER" backup --help
assert_contains "$T/out" "--exclude" "backup --help lists --exclude"
grep -qF -- "--target" "$T/out" && soft_fail "backup --help lists --target, which it does not take"
grep -qF -- "--dry-run" "$T/out" || soft_fail "backup --help does not list --dry-run"
expect_exit 0 "$COFFER" diff --help
grep -qF -- "--dry-run" "$T/out" && soft_fail "diff --help lists --dry-run, which it does not take"

# --- 2. restore --mariadb --rename with a database the snapshot lacks ---------
# the dump is placed as mariadb/shop.sql by a command, so no server is needed:
# the check comes before any connection (port 1 would refuse it anyway)
cof -r "$R" backup --stdin-from-command 'printf "CREATE TABLE t (a INT);\n"' --stdin-filename mariadb/shop.sql
refused "--rename shopp=shop_dev" "shopp" "shop" -- \
	"$COFFER" -r "$R" restore latest --mariadb "mariadb://nobody@127.0.0.1:1/" --rename shopp=shop_dev
refused "--database shopp" "shopp" "it has: shop" -- \
	"$COFFER" -r "$R" restore latest --mariadb "mariadb://nobody@127.0.0.1:1/" --database shopp

# against a real server (COFFER_TEST_MARIADB): the live database is untouched
if [ -n "${COFFER_TEST_MARIADB:-}" ]; then
	MURL=${COFFER_TEST_MARIADB%/}
	eval "$(python3 - "$MURL" <<'EOF'
import sys, urllib.parse, shlex
u = urllib.parse.urlsplit(sys.argv[1])
q = urllib.parse.parse_qs(u.query)
a = ["--no-defaults", "-u", urllib.parse.unquote(u.username or "")]
if u.password is not None:
    a.append("-p" + urllib.parse.unquote(u.password))
a += ["--socket", q["socket"][0]] if "socket" in q else ["-h", u.hostname, "-P", str(u.port or 3306), "--protocol=tcp"]
print("MDB_ARGS=(%s)" % " ".join(shlex.quote(x) for x in a))
EOF
)"
	mq() { mariadb "${MDB_ARGS[@]}" -N -B -e "$1"; }
	DB=slips_$$_$RANDOM
	trap 'mq "DROP DATABASE IF EXISTS \`$DB\`; DROP DATABASE IF EXISTS \`${DB}_dev\`" 2>/dev/null; e2e_cleanup' EXIT
	mq "CREATE DATABASE \`$DB\`; CREATE TABLE \`$DB\`.t (v INT); INSERT INTO \`$DB\`.t VALUES (1)" ||
		fail "cannot create the test database"
	cof -r "$R" backup --mariadb "$MURL/$DB"
	mq "UPDATE \`$DB\`.t SET v = 2"
	refused "--rename typo against a live server" "${DB}x" "$DB" -- \
		"$COFFER" -r "$R" restore latest --mariadb "$MURL/" --rename "${DB}x=${DB}_dev"
	check_eq 2 "$(mq "SELECT v FROM \`$DB\`.t")" "the live database after a refused --rename"
	check_eq "" "$(mq "SHOW DATABASES LIKE '${DB}_dev'")" "database made by a refused --rename"
	# the right name loads the copy beside the live one
	cof -r "$R" restore latest --mariadb "$MURL/" --rename "$DB=${DB}_dev"
	check_eq 1 "$(mq "SELECT v FROM \`${DB}_dev\`.t")" "the renamed copy"
	check_eq 2 "$(mq "SELECT v FROM \`$DB\`.t")" "the live database after --rename"
else
	note "COFFER_TEST_MARIADB unset: the --rename case against a live server is not run"
fi

# --- 3. two --stdin-from-command pairs: both stored ---------------------------
cof -r "$R" backup --stdin-from-command 'echo one' --stdin-filename cmd/one.txt \
	--stdin-from-command 'echo two' --stdin-filename cmd/two.txt
for f in one two; do
	"$COFFER" -r "$R" dump latest "/cmd/$f.txt" > "$T/$f.out" 2> "$T/err" ||
		{ sed 's/^/    /' "$T/err" >&2; soft_fail "the second pair replaced the first: /cmd/$f.txt missing"; continue; }
	check_eq "$f" "$(cat "$T/$f.out")" "/cmd/$f.txt"
done
n0=$(nsnaps)
refused "two commands, one file name" "--stdin-filename" -- "$COFFER" -r "$R" backup \
	--stdin-from-command 'echo one' --stdin-filename one.txt --stdin-from-command 'echo two'
check_eq "$n0" "$(nsnaps)" "snapshots after an unpaired --stdin-from-command"

# --- 4. restore --include that matches nothing ---------------------------------
cof -r "$R" backup "$S/site"
refused "--include typo" "$S/sitee" -- \
	"$COFFER" -r "$R" restore latest --target "$T/r1" --include "$S/sitee"
[ -e "$T/r1" ] && [ -n "$(ls -A "$T/r1")" ] && soft_fail "a refused restore wrote into the target"
refused "--include below a file" "$S/site/index.html/x" -- \
	"$COFFER" -r "$R" restore latest --target "$T/r1" --include "$S/site/index.html/x"
refused "--path-map typo" "/nope" -- \
	"$COFFER" -r "$R" restore latest --path-map "/nope=$T/r2"
# a good include (and one with a trailing slash) still restores
cof -r "$R" restore latest --target "$T/r3" --include "$S/site/img/"
check_eq logo "$(cat "$T/r3$S/site/img/logo.png" 2>/dev/null)" "restored include"

# --- 5. excludes never drop a dump the command asked for -----------------------
sqlite3 "$S/db/app.db" 'CREATE TABLE t (a); INSERT INTO t VALUES (42);'
sqlite3 "$S/db/sub/deep.db" 'CREATE TABLE t (a); INSERT INTO t VALUES (7);'
n0=$(nsnaps)
refused "--exclude '*.db' with --sqlite" "*.db" "$S/db/app.db" -- \
	"$COFFER" -r "$R" backup "$S/db" --sqlite "$S/db/app.db" --exclude '*.db'
refused "--exclude of the directory holding the --sqlite database" "$S/db/sub" "deep.db" -- \
	"$COFFER" -r "$R" backup "$S/db" --sqlite "$S/db/sub/deep.db" --exclude "$S/db/sub"
refused "--exclude '*.sql' with a command's dump" "*.sql" "dump.sql" -- \
	"$COFFER" -r "$R" backup "$S/site" --stdin-from-command 'echo x' --stdin-filename pg/dump.sql --exclude '*.sql'
# a command's file inside the walked directory would be left out by the walk
refused "--stdin-filename inside a walked directory" "$S/db" -- \
	"$COFFER" -r "$R" backup "$S/db" --stdin-from-command 'echo hi' --stdin-filename "${S#/}/db/x.txt"
check_eq "$n0" "$(nsnaps)" "snapshots after the refused backups"
# an exclude that leaves the dump alone: the copy is in the snapshot
cof -r "$R" backup "$S/db" --sqlite "$S/db/app.db" --exclude '*.tmp' --exclude "$S/db/sub"
"$COFFER" -r "$R" ls latest > "$T/ls" || fail "ls"
assert_contains "$T/ls" "$S/db/app.db" "the SQLite copy in the snapshot"
grep -qF "$S/db/sub" "$T/ls" && soft_fail "--exclude $S/db/sub did not apply to the directory"
# the agent refuses the same at start (COFFER_PARSE_ONLY validates its settings)
COFFER_PARSE_ONLY=1 COFFER_REPOSITORY=$R COFFER_BACKUP_PATHS=$S/db COFFER_SQLITE=$S/db/app.db \
	COFFER_EXCLUDES='*.tmp,*.db' COFFER_STATE_DIR=$T/state \
	refused "agent: COFFER_EXCLUDES matching COFFER_SQLITE" "*.db" "$S/db/app.db" -- "$COFFER" agent
COFFER_PARSE_ONLY=1 COFFER_REPOSITORY=$R COFFER_BACKUP_PATHS=$S/db COFFER_SQLITE=$S/db/app.db \
	COFFER_EXCLUDES='*.tmp' COFFER_STATE_DIR=$T/state expect_exit 0 "$COFFER" agent
# without COFFER_BACKUP_PATHS every directory under COFFER_BACKUP_ROOT is walked
mkdir -p "$T/broot/vol"
COFFER_PARSE_ONLY=1 COFFER_REPOSITORY=$R COFFER_BACKUP_ROOT=$T/broot COFFER_STATE_DIR=$T/state \
	COFFER_STDIN_COMMANDS="${T#/}/broot/vol/pg.sql=echo x" \
	refused "agent: a command's file inside a walked volume" "$T/broot/vol" -- "$COFFER" agent

e2e_done
