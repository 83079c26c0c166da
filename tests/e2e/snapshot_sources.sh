#!/bin/bash
# snapshot_sources.sh - a snapshot says what it holds (issue 20, part 1):
# `coffer backup` of two directories, a --stdin-from-command dump and an
# SQLite file records one source each, in order, in `snapshots --json` (and
# in `ls --json`'s snapshot line); `snapshots` prints one "source:" line per
# source under the unchanged rows; `coffer agent --once` records its volumes,
# its COFFER_SQLITE file and its COFFER_STDIN_COMMANDS dump the same way; a
# MariaDB server (when COFFER_TEST_MARIADB is set) is recorded with its URL
# without credentials and one entry per database; the golden repository
# (written before sources existed) still lists, without sources, and
# restores; tests/golden/repo-sources (written by the first version that
# records sources) lists the sources of tests/golden/repo-sources.json and
# restores its volumes, SQLite file and dump.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/vol/a/sub" "$T/vol/b" "$T/sq"
echo one > "$T/vol/a/sub/one"
echo two > "$T/vol/b/two"
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("create table t(x)"); c.execute("insert into t values (42)"); c.commit()' \
	"$T/sq/app.db" || fail "cannot make the SQLite database"

cd "$T" || fail "cd $T"
# vol/b relative: the source is the path as the snapshot records it (absolute)
cof -r "$R" backup "$T/vol/a" vol/b --stdin-from-command "printf 'dump\n'" --stdin-filename dumps/x.sql \
	--sqlite "$T/sq/app.db"
cof -r "$R" --json snapshots
cp "$T/out" "$T/snaps.json"
check_eq "[{'kind': 'volume', 'path': '$T/vol/a'}, {'kind': 'volume', 'path': '$T/vol/b'}, {'kind': 'sqlite', 'path': '$T/sq/app.db'}, {'kind': 'command', 'path': 'dumps/x.sql'}]" \
	"$(json_field "$T/snaps.json" 'j[0]["sources"]')" "snapshots --json: the backup's sources"
check_eq "$T/vol/a $T/vol/b $T/sq/app.db dumps/x.sql" "$(json_field "$T/snaps.json" '" ".join(j[0]["paths"])')" \
	"paths are as before"
assert_not_contains "$T/snaps.json" "printf" "the command line is not stored"

# a copy keeps what the snapshot holds (a restore from an offsite copy needs it)
cof -r "$T/copyrepo" init --kdf-passes 1 --kdf-memory 64
cof -r "$T/copyrepo" copy --from-repo "$R" --from-password-file "$COFFER_PASSWORD_FILE"
cof -r "$T/copyrepo" --json snapshots
check_eq "$(json_field "$T/snaps.json" 'j[0]["sources"]')" "$(json_field "$T/out" 'j[0]["sources"]')" \
	"copy: the copied snapshot has the same sources"

cof -r "$R" --json ls latest
head -n 1 "$T/out" > "$T/ls.json"
check_eq 4 "$(json_field "$T/ls.json" 'len(j["sources"])')" "ls --json: the snapshot line has the sources"

cof -r "$R" snapshots
check_eq 1 "$(grep -cxE "[0-9a-f]{8}  [0-9-]{10} [0-9:]{8}  .{16}  .{16}  $T/vol/a" "$T/out")" "the snapshot's first row is unchanged"
check_eq 4 "$(grep -c '  source: ' "$T/out")" "snapshots: one source line per source"
assert_contains "$T/out" "source: volume $T/vol/b" "snapshots: a volume's line"
assert_contains "$T/out" "source: sqlite $T/sq/app.db" "snapshots: the SQLite file's line"
assert_contains "$T/out" "source: command dumps/x.sql" "snapshots: the command dump's line"
assert_contains "$T/out" "1 snapshots" "the closing line is unchanged"

# a snapshot without stream sources lists its volume
cof -r "$R" backup "$T/vol/b" --tag only-b
cof -r "$R" --json snapshots --tag only-b
check_eq "[{'kind': 'volume', 'path': '$T/vol/b'}]" "$(json_field "$T/out" 'j[0]["sources"]')" "a volume-only backup"

# --- the agent: volumes under the backup root, COFFER_SQLITE, a command dump
RA=$T/repo-agent
init_repo "$RA"
mkdir -p "$T/backup/app" "$T/backup/web" "$T/state"
echo cfg > "$T/backup/app/settings.ini"
echo page > "$T/backup/web/index.html"
expect_exit 0 env -i PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$RA" COFFER_PASSWORD_FILE="$PWFILE" \
	COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none \
	COFFER_SQLITE="$T/sq/app.db" COFFER_STDIN_COMMANDS="dumps/app.sql=printf 'CREATE TABLE t;\\n'" \
	"$COFFER" agent --once
cof -r "$RA" --json snapshots
check_eq "[{'kind': 'volume', 'path': '$T/backup/app'}, {'kind': 'volume', 'path': '$T/backup/web'}, {'kind': 'sqlite', 'path': '$T/sq/app.db'}, {'kind': 'command', 'path': 'dumps/app.sql'}]" \
	"$(json_field "$T/out" 'j[0]["sources"]')" "agent --once: the job's sources"

# --- MariaDB: the URL without its credentials, one entry per database -----
if [ -n "${COFFER_TEST_MARIADB:-}" ] && command -v mariadb > /dev/null; then
	read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
	sql() { mariadb --no-defaults -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
	DB1=src_a_$$_$RANDOM DB2=src_b_$$_$RANDOM
	sql -e "CREATE DATABASE \`$DB1\`; CREATE TABLE \`$DB1\`.t (v INT); INSERT INTO \`$DB1\`.t VALUES (1);
		CREATE DATABASE \`$DB2\`; CREATE TABLE \`$DB2\`.t (v INT);" || fail "cannot create the test databases"
	trap 'sql -e "DROP DATABASE IF EXISTS \`$DB1\`; DROP DATABASE IF EXISTS \`$DB2\`" 2>/dev/null; e2e_cleanup' EXIT
	base=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' \
		"$COFFER_TEST_MARIADB")
	# the URL as the test gives it: with the server's user and password
	[ -n "$MPASS" ] || note "the test server has no password: checking that the user name is dropped"
	cof -r "$R" backup "$T/vol/a" --mariadb "$base/$DB1,$DB2" --tag db
	cof -r "$R" --json snapshots --tag db
	cp "$T/out" "$T/db.json"
	check_eq "mariadb mariadb $MHOST:$MPORT" \
		"$(json_field "$T/db.json" 'j[0]["sources"][1]["kind"] + " " + j[0]["sources"][1]["path"] + " " + j[0]["sources"][1]["url"].split("//")[1].split("/")[0]')" \
		"the server's entry: kind, path, host:port"
	check_eq "$DB1=mariadb/$DB1.sql $DB2=mariadb/$DB2.sql" \
		"$(json_field "$T/db.json" '" ".join(d["name"] + "=" + d["path"] for d in j[0]["sources"][1]["databases"])')" \
		"one entry per database, with its dump's path"
	json_field "$T/db.json" 'j[0]["sources"][1]["url"]' > "$T/url"
	assert_not_contains "$T/url" "@" "no userinfo in the stored URL"
	[ -z "$MPASS" ] || assert_not_contains "$T/db.json" "$MPASS" "the password is not stored"
	cof -r "$R" snapshots --tag db
	assert_contains "$T/out" "source: mariadb mariadb from mariadb://$MHOST:$MPORT/$DB1,$DB2 (databases $DB1, $DB2)" \
		"snapshots: the server's line"
else
	note "COFFER_TEST_MARIADB is not set: the MariaDB part is skipped"
fi

# --- an older snapshot (the golden repository) lists without sources and restores
src=${COFFER_SOURCE_DIR:-$(dirname "$0")/../..}
cp -r "$src/tests/golden/repo-v1" "$T/golden" || fail "copy the golden repository"
GPW=$T/golden-pw
printf 'golden\n' > "$GPW"
expect_exit 0 env COFFER_PASSWORD_FILE="$GPW" "$COFFER" -r "$T/golden" --json snapshots
check_eq "1 False" "$(json_field "$T/out" 'str(len(j)) + " " + str("sources" in j[0])')" "golden: one snapshot, no sources"
expect_exit 0 env COFFER_PASSWORD_FILE="$GPW" "$COFFER" -r "$T/golden" snapshots
assert_not_contains "$T/out" "source:" "golden: no source lines"
assert_contains "$T/out" "/tmp/coffer-golden-v1/src" "golden: its path is listed"
expect_exit 0 env COFFER_PASSWORD_FILE="$GPW" "$COFFER" -r "$T/golden" restore latest --target "$T/golden-restore"
[ -f "$T/golden-restore/tmp/coffer-golden-v1/src/notes/todo.txt" ] || soft_fail "golden: restore produced no files"

# --- the golden repository with sources: read as it was written -----------
cp -r "$src/tests/golden/repo-sources" "$T/gsrc" || fail "copy tests/golden/repo-sources"
expect_exit 0 env COFFER_PASSWORD_FILE="$GPW" "$COFFER" -r "$T/gsrc" --json snapshots
"$PY" - "$T/out" "$src/tests/golden/repo-sources.json" <<'PY' || soft_fail "repo-sources: the sources differ from repo-sources.json"
import json, sys
got = json.load(open(sys.argv[1]))
want = json.load(open(sys.argv[2]))
assert len(got) == 1, got
if got[0].get("sources") != want:
    sys.exit("got %r, want %r" % (got[0].get("sources"), want))
PY
expect_exit 0 env COFFER_PASSWORD_FILE="$GPW" "$COFFER" -r "$T/gsrc" snapshots
assert_contains "$T/out" "source: sqlite /tmp/coffer-golden-sources/db/app.db" "repo-sources: the SQLite line"
expect_exit 0 env COFFER_PASSWORD_FILE="$GPW" "$COFFER" -r "$T/gsrc" restore latest --target "$T/gsrc-restore"
G=$T/gsrc-restore/tmp/coffer-golden-sources
check_eq "cfg page CREATE TABLE t;" \
	"$(cat "$G/app/settings.ini" "$G/web/index.html" "$T/gsrc-restore/dumps/app.sql" | tr '\n' ' ' | sed 's/ $//')" \
	"repo-sources: volumes and the dump restore"
check_eq 42 "$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select x from t").fetchone()[0])' \
	"$G/db/app.db")" "repo-sources: the SQLite file restores"
expect_exit 0 env COFFER_PASSWORD_FILE="$GPW" "$COFFER" -r "$T/gsrc" check --read-data

e2e_done
