#!/bin/bash
# restore_all.sh - `coffer restore SNAPSHOT --all` (issue 20, item 2, first
# increment): two volumes and an SQLite file (and a MariaDB database when
# COFFER_TEST_MARIADB is set) are backed up; the volumes are damaged (a file
# changed, one deleted, one added, a symlink planted where a file was), the
# SQLite file removed, the database dropped; `--dry-run` changes nothing and
# its plan's counts are those the real run then reports; off a terminal
# without --yes it exits 2 naming --yes; `restore latest --all --yes` brings
# the volumes back equal to a copy taken before the damage (the added file
# gone), the SQLite file and the database (CHECKSUM TABLE equal); a snapshot
# without sources (tests/golden/repo-v1) is refused with one line.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/vol/a/sub" "$T/vol/b" "$T/sq"
echo one > "$T/vol/a/sub/one"
echo keep > "$T/vol/a/keep"
randfile "$T/vol/a/big" 300000
echo two > "$T/vol/b/two"
echo target > "$T/vol/b/linked"
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("create table t(x)"); c.execute("insert into t values (42)"); c.commit()' \
	"$T/sq/app.db" || fail "cannot make the SQLite database"

DBARGS=()
RARGS=()
MARIA=
if [ -n "${COFFER_TEST_MARIADB:-}" ] && command -v mariadb > /dev/null; then
	MARIA=1
	read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
	sql() { mariadb --no-defaults -N -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
	DB=rall_$$_$RANDOM
	sql -e "CREATE DATABASE \`$DB\`; CREATE TABLE \`$DB\`.t (id INT PRIMARY KEY, v VARCHAR(20));
		INSERT INTO \`$DB\`.t VALUES (1,'one'),(2,'two'),(3,'three');" || fail "cannot create the test database"
	trap 'sql -e "DROP DATABASE IF EXISTS \`$DB\`" 2>/dev/null; e2e_cleanup' EXIT
	base=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' \
		"$COFFER_TEST_MARIADB")
	SUM0=$(sql -e "CHECKSUM TABLE \`$DB\`.t" | awk '{print $2}')
	DBARGS=(--mariadb "$base/$DB")
	RARGS=(--mariadb "$base/")
else
	note "COFFER_TEST_MARIADB is not set: the MariaDB part is skipped"
fi

cof -r "$R" backup "$T/vol/a" "$T/vol/b" --sqlite "$T/sq/app.db" \
	--stdin-from-command "printf 'dump\n'" --stdin-filename dumps/x.sql "${DBARGS[@]}"
cp -a "$T/vol" "$T/orig" || fail "copy the volumes"

# --- the damage
echo changed > "$T/vol/a/sub/one"
rm "$T/vol/b/two"
echo added > "$T/vol/b/added"
rm "$T/vol/b/linked"
ln -s /etc/passwd "$T/vol/b/linked"
rm "$T/sq/app.db"
[ -z "$MARIA" ] || sql -e "DROP DATABASE \`$DB\`" || fail "cannot drop the test database"
cp -a "$T/vol" "$T/damaged"

# --- a dry run: the plan, nothing changed
cof -r "$R" restore latest --all --dry-run "${RARGS[@]}"
cp "$T/out" "$T/plan"
assert_contains "$T/plan" "plan for restoring snapshot" "the plan's heading"
assert_contains "$T/plan" "volume $T/vol/a -> $T/vol/a: 0 new, 1 replaced, 4 bytes; 0 deleted, 0 bytes; 2 unchanged" \
	"the plan of volume a (one file replaced)"
# b: two and linked written (linked replaces the symlink), added deleted
assert_contains "$T/plan" "volume $T/vol/b -> $T/vol/b: 1 new, 1 replaced, 11 bytes; 1 deleted, 6 bytes; 0 unchanged" \
	"the plan of volume b (one new, the symlink replaced, one deleted)"
assert_contains "$T/plan" "sqlite $T/sq/app.db -> $T/sq: 1 new, 0 replaced" "the plan of the SQLite file"
assert_contains "$T/plan" "command dump /dumps/x.sql: not restored: a command dump (restore it with --include /dumps/x.sql)" \
	"the command dump is named as not restored"
[ -z "$MARIA" ] || assert_contains "$T/plan" "database $DB on " "the plan names the database"
compare_trees "$T/damaged" "$T/vol"
[ ! -e "$T/sq/app.db" ] || soft_fail "--dry-run restored the SQLite file"
if [ -n "$MARIA" ]; then
	check_eq 0 "$(sql -e "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name='$DB'")" \
		"--dry-run did not load the database"
fi

# --- off a terminal without --yes: exit 2 naming --yes, nothing changed
expect_exit 2 "$COFFER" -r "$R" restore latest --all "${RARGS[@]}" < /dev/null
assert_one_line_err "without --yes"
assert_contains "$T/err" "--yes" "the refusal names --yes"
compare_trees "$T/damaged" "$T/vol"
[ ! -e "$T/sq/app.db" ] || soft_fail "the refused run restored the SQLite file"

# --- the real run (the server from COFFER_MARIADB, as the agent's)
if [ -n "$MARIA" ]; then
	expect_exit 1 "$COFFER" -r "$R" restore latest --all --yes
	assert_contains "$T/err" "give --mariadb URL (or set COFFER_MARIADB)" "no server: refused before anything is written"
	compare_trees "$T/damaged" "$T/vol"
	export COFFER_MARIADB="$base/"
fi
cof -r "$R" restore latest --all --yes < /dev/null
cp "$T/out" "$T/done"
# each plan line's counts are what the run reports (it adds the time)
grep -E '^  (volume|sqlite) ' "$T/plan" > "$T/plan.counts"
sed -n '/^restoring snapshot/,$p' "$T/done" | grep -E '^  (volume|sqlite) ' | sed -E 's/; [0-9.]+ s$//' > "$T/done.counts"
[ -s "$T/plan.counts" ] || soft_fail "the plan has no volume lines"
cmp -s "$T/plan.counts" "$T/done.counts" || {
	diff "$T/plan.counts" "$T/done.counts" >&2
	soft_fail "the plan's counts differ from what the run did"
}
assert_contains "$T/done" "restored snapshot" "the closing line"
compare_trees "$T/orig" "$T/vol"
[ ! -e "$T/vol/b/added" ] || soft_fail "the added file is still there"
[ -f "$T/vol/b/linked" ] && [ ! -L "$T/vol/b/linked" ] || soft_fail "the planted symlink is still there"
cof -r "$R" dump latest "$T/sq/app.db"
cp "$T/out" "$T/app.db.snap"
cmp -s "$T/app.db.snap" "$T/sq/app.db" || soft_fail "the SQLite file is not restored byte-equal to the snapshot's copy"
check_eq 42 "$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select x from t").fetchone()[0])' "$T/sq/app.db")" \
	"the SQLite file's row"
[ ! -e "$T/dumps/x.sql" ] && [ ! -e /dumps/x.sql ] || soft_fail "the command dump was restored"
if [ -n "$MARIA" ]; then
	assert_contains "$T/done" "database $DB: loaded from mariadb/$DB.sql" "the report names the database"
	check_eq "$SUM0" "$(sql -e "CHECKSUM TABLE \`$DB\`.t" | awk '{print $2}')" "CHECKSUM TABLE after restore --all"
	check_eq "1 one,2 two,3 three" "$(sql -e "SELECT GROUP_CONCAT(CONCAT(id,' ',v) ORDER BY id) FROM \`$DB\`.t")" \
		"the rows are back"
fi

# a second run has nothing to do
cof -r "$R" restore latest --all --yes
assert_contains "$T/out" "volume $T/vol/b -> $T/vol/b: 0 new, 0 replaced, 0 bytes; 0 deleted, 0 bytes; 2 unchanged" \
	"a second run writes nothing"

# --- a --path-map sends a volume elsewhere
cof -r "$R" restore latest --all --yes --dry-run --path-map "$T/vol/a=$T/elsewhere"
assert_contains "$T/out" "volume $T/vol/a -> $T/elsewhere: 3 new" "--path-map applies to a volume"

# --- a snapshot without sources is refused with one line
src=${COFFER_SOURCE_DIR:-$(dirname "$0")/../..}
cp -r "$src/tests/golden/repo-v1" "$T/golden" || fail "copy the golden repository"
printf 'golden\n' > "$T/golden-pw"
expect_exit 1 env COFFER_PASSWORD_FILE="$T/golden-pw" "$COFFER" -r "$T/golden" restore latest --all --yes
assert_one_line_err "a snapshot without sources"
assert_contains "$T/err" "predates source records" "the refusal says why"
assert_contains "$T/err" "--target" "the refusal names what to use instead"
[ ! -e "$T/tmp" ] && [ ! -e /tmp/coffer-golden-v1/src ] || note "golden source path exists (not made by this test?)"

e2e_done
