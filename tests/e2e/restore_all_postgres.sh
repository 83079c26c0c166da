#!/bin/bash
# restore_all_postgres.sh - `restore SNAPSHOT --all` loads the snapshot's
# PostgreSQL dumps (issue 20) into the server of --postgres URL or
# COFFER_POSTGRES, as it does MariaDB dumps with --mariadb/COFFER_MARIADB:
# a snapshot of a volume and a database; the volume damaged, the database
# dropped; without a server --all refuses naming --postgres, changing nothing;
# the plan names the database, --dry-run changes nothing, no --yes off a
# terminal exits 2; with COFFER_POSTGRES the volume comes back (compare_trees)
# and the database pg_dump-equal; --rename loads an equal copy.  Needs
# COFFER_TEST_POSTGRES (CI exports it), psql and pg_dump.
. "$(dirname "$0")/lib.sh"
e2e_setup
[ -n "${COFFER_TEST_POSTGRES:-}" ] || skip "COFFER_TEST_POSTGRES is not set (tests/infra/pg-up.sh)"
command -v psql > /dev/null && command -v pg_dump > /dev/null || skip "psql and pg_dump are needed (postgresql-client-15)"
URL=${COFFER_TEST_POSTGRES%/}
eval "$("$PY" - "$URL" <<'PYEOF'
import sys, urllib.parse, shlex
u = urllib.parse.urlsplit(sys.argv[1])
print("PGHOST=%s PGPORT=%s PGUSER=%s PGPASSWORD=%s" % tuple(shlex.quote(x) for x in (
    u.hostname, str(u.port or 5432), urllib.parse.unquote(u.username or ""),
    urllib.parse.unquote(u.password or ""))))
PYEOF
)"
export PGHOST PGPORT PGUSER PGPASSWORD
sql() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" "$@"; }
DB=cfall_$$_$RANDOM COPY=cfall_$$_${RANDOM}_copy
trap 'for d in $DB $COPY; do sql postgres -c "DROP DATABASE IF EXISTS \"$d\"" 2>/dev/null; done; e2e_cleanup' EXIT
pgdump() { pg_dump -d "$1" | grep -v -e '^--' -e '^\\restrict ' -e '^\\unrestrict '; }

sql postgres -c "CREATE DATABASE \"$DB\"" || fail "CREATE DATABASE"
sql "$DB" -c "CREATE TABLE item (id int PRIMARY KEY, name text, price numeric(8,2));
	INSERT INTO item SELECT g, 'item ' || g, g * 1.25 FROM generate_series(1, 500) g;
	CREATE VIEW dear AS SELECT * FROM item WHERE price > 100;" > /dev/null || fail "filling the database"
pgdump "$DB" > "$T/before.sql"
mkdir -p "$T/vol/sub" "$T/orig"
randfile "$T/vol/a.bin" 100000
echo keep > "$T/vol/sub/keep.txt"
cp -a "$T/vol/." "$T/orig/"
init_repo "$T/repo"
cof -r "$T/repo" backup "$T/vol" --postgres "$URL/$DB"
cof -r "$T/repo" --json snapshots
check_eq "postgres" "$(json_field "$T/out" '" ".join(s["kind"] for s in j[0]["sources"] if s["kind"] != "volume")')" \
	"the snapshot records the PostgreSQL source"

# the damage
echo changed > "$T/vol/sub/keep.txt"
rm "$T/vol/a.bin"
echo junk > "$T/vol/added"
sql postgres -c "DROP DATABASE \"$DB\""

# no server to load into: refused, nothing changed
expect_exit 1 env -u COFFER_POSTGRES "$COFFER" -r "$T/repo" restore latest --all --yes
assert_contains "$T/err" "holds PostgreSQL dumps: give --postgres URL (or set COFFER_POSTGRES)" "the refusal"
check_eq changed "$(cat "$T/vol/sub/keep.txt")" "the volume after the refusal"
expect_exit 1 "$COFFER" -r "$T/repo" restore latest --all --yes --postgres "mysql://x@y/"
check_eq changed "$(cat "$T/vol/sub/keep.txt")" "the volume after a bad --postgres URL"

# the plan; --dry-run; no --yes off a terminal
expect_exit 0 env COFFER_POSTGRES="$URL/" "$COFFER" -r "$T/repo" restore latest --all --dry-run
grep -q "PostgreSQL database $DB on .*: the whole database is replaced by the dump postgres/$DB.sql" "$T/out" ||
	soft_fail "the plan does not name the PostgreSQL database: $(cat "$T/out")"
grep -q "coffer-test" "$T/out" && soft_fail "the plan shows the password"
check_eq 0 "$(sql postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" "the database after --dry-run"
check_eq changed "$(cat "$T/vol/sub/keep.txt")" "the volume after --dry-run"
expect_exit 2 env COFFER_POSTGRES="$URL/" setsid "$COFFER" -r "$T/repo" restore latest --all < /dev/null
assert_contains "$T/err" "--yes" "without --yes off a terminal"
check_eq 0 "$(sql postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" "the database without --yes"

# the restore through COFFER_POSTGRES
expect_exit 0 env COFFER_POSTGRES="$URL/" "$COFFER" -r "$T/repo" restore latest --all --yes
assert_contains "$T/out" "database $DB: loaded from postgres/$DB.sql" "the report"
compare_trees "$T/orig" "$T/vol"
pgdump "$DB" > "$T/after.sql"
cmp -s "$T/before.sql" "$T/after.sql" || soft_fail "pg_dump after restore --all differs: $(diff "$T/before.sql" "$T/after.sql" | head -5)"

# --postgres URL with --rename: a copy beside it
cof -r "$T/repo" restore latest --all --yes --postgres "$URL/" --rename "$DB=$COPY"
pgdump "$COPY" > "$T/copy.sql"
cmp -s "$T/before.sql" "$T/copy.sql" || soft_fail "the --rename copy differs"
e2e_done
