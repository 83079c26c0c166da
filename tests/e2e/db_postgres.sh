#!/bin/bash
# db_postgres.sh - `coffer backup --postgres URL` / `coffer restore --postgres`
# against a real PostgreSQL 15 server: $COFFER_TEST_POSTGRES
# (tests/infra/servers.sh starts one with pg-up.sh), else a private one started
# here with tests/infra/pg-up.sh; skipped only when neither is possible (no
# server binaries).  What a user checks:
#  1. a database with a schema, tables with a foreign key, a sequence with a
#     non-default increment (advanced) and a serial column, an enum, a domain,
#     a view, a materialized view, a plpgsql function, a trigger, bytea of every
#     byte value, a large object, comments, and an extension (pgcrypto or
#     hstore when postgresql-contrib is installed) is backed up together with a
#     volume path into ONE snapshot that records a "postgres" source without
#     the password; `ls` shows postgres/<db>.sql;
#  2. the database dropped, `restore --postgres` brings it back: pg_dump of
#     the source and of the restored database are equal (pg_dump's comments
#     and its per-run \restrict key taken out); the sequence continues where it
#     was, the large object and the bytea hold their bytes, the trigger did not
#     fire during the load but fires after it, the extension works;
#  3. `--rename DB=NEW` loads into NEW (pg_dump equal again) and leaves DB alone;
#  4. restoring over an existing database replaces it (a row added after the
#     backup is gone); a load that fails (an owner role that does not exist
#     on the target) names the line, exits 1, and leaves the existing database
#     as it was and no temporary database behind;
#  5. errors: a wrong password is refused with one line naming user@host
#     (never the password), exit 1, no snapshot; an unknown database in the
#     URL likewise; a pg_dump that fails (a user without SELECT on a table)
#     fails the backup with pg_dump's error line, and no snapshot claims the
#     database;
#  6. the agent: COFFER_POSTGRES is validated, shown by --print-config without
#     the password, and --once writes a snapshot with the dump and its source.
. "$(dirname "$0")/lib.sh"
e2e_setup
infra=$(cd "$(dirname "$0")/../infra" && pwd)

if [ -z "${COFFER_TEST_POSTGRES:-}" ]; then
	[ -x /usr/lib/postgresql/15/bin/postgres ] ||
		skip "COFFER_TEST_POSTGRES is not set and PostgreSQL 15 is not installed (tests/infra/pg-up.sh)"
	# a private server on a port of its own (PG_PORT overrides)
	# (outside $T, which only root may enter: the server runs as another user)
	PG_BASE=$(mktemp -d /tmp/coffer-e2e-pg.XXXXXX) || fail "mktemp"
	chmod 0755 "$PG_BASE"
	export PG_BASE PG_PORT=${PG_PORT:-$((30000 + $$ % 20000))}
	trap 'sh "$infra/pg-down.sh" >/dev/null 2>&1; rm -rf "$PG_BASE"; e2e_cleanup' EXIT
	sh "$infra/pg-up.sh" > "$T/pg-up.out" 2>&1 || { cat "$T/pg-up.out" >&2; fail "pg-up.sh"; }
	COFFER_TEST_POSTGRES="postgres://coffer:coffer-test@127.0.0.1:$PG_PORT/"
fi
command -v psql > /dev/null && command -v pg_dump > /dev/null ||
	fail "psql and pg_dump are needed (postgresql-client-15)"

URL=${COFFER_TEST_POSTGRES%/}
eval "$("$PY" - "$URL" <<'EOF'
import sys, urllib.parse, shlex
u = urllib.parse.urlsplit(sys.argv[1])
print("PGHOST=%s PGPORT=%s PGUSER=%s PGPASSWORD=%s" % tuple(shlex.quote(x) for x in (
    u.hostname, str(u.port or 5432), urllib.parse.unquote(u.username or ""),
    urllib.parse.unquote(u.password or ""))))
print("SECRET=%s" % shlex.quote(urllib.parse.unquote(u.password or "")))
print("HOSTPORT=%s" % shlex.quote("%s:%s" % (u.hostname, u.port or 5432)))
EOF
)"
export PGHOST PGPORT PGUSER PGPASSWORD
psql -X -q -d postgres -c 'SELECT 1' > /dev/null || fail "cannot reach $PGUSER@$HOSTPORT with psql"
# coffer must not borrow the test's password from the environment
PGPW=$PGPASSWORD
nopw() { env -u PGPASSWORD "$@"; }

sql() { local db=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -At -d "$db" "$@"; }
P=cfe2e_$$_$RANDOM
DB=${P}_app COPY=${P}_copy OWN=${P}_own
cleanup_dbs()
{
	for d in $DB $COPY $OWN; do sql postgres -c "DROP DATABASE IF EXISTS \"$d\"" 2>/dev/null; done
	sql postgres -c "DROP ROLE IF EXISTS ${P}_ro" -c "DROP ROLE IF EXISTS ${P}_owner" 2>/dev/null
}
trap 'cleanup_dbs; [ -n "${PG_BASE:-}" ] && { sh "$infra/pg-down.sh" >/dev/null 2>&1; rm -rf "$PG_BASE"; }; e2e_cleanup' EXIT

# normalised pg_dump: its comments and the random \restrict key of each run out
pgdump() { pg_dump -d "$1" | grep -v -e '^--' -e '^\\restrict ' -e '^\\unrestrict '; }

EXT=
for e in pgcrypto hstore; do
	if [ "$(sql postgres -c "SELECT count(*) FROM pg_available_extensions WHERE name = '$e'")" = 1 ]; then
		EXT=$e
		break
	fi
done
[ -n "$EXT" ] || note "no pgcrypto or hstore (postgresql-contrib): the extension part is not tested"

sql postgres -c "CREATE DATABASE \"$DB\""
sql "$DB" > /dev/null <<EOF || fail "creating the test database"
CREATE SCHEMA shop;
COMMENT ON SCHEMA shop IS 'the shop''s schema';
CREATE TYPE shop.state AS ENUM ('new', 'paid', 'shipped');
CREATE DOMAIN shop.price AS numeric(12,2) CHECK (VALUE >= 0);
CREATE SEQUENCE shop.ticket INCREMENT BY 7 START WITH 100 MINVALUE 100;
SELECT nextval('shop.ticket'), nextval('shop.ticket'), nextval('shop.ticket');
CREATE TABLE shop.customer (id serial PRIMARY KEY, name text NOT NULL UNIQUE, photo bytea);
CREATE TABLE shop.orders (
	id bigint PRIMARY KEY DEFAULT nextval('shop.ticket'),
	customer int NOT NULL REFERENCES shop.customer(id),
	state shop.state NOT NULL DEFAULT 'new',
	total shop.price,
	placed timestamptz NOT NULL DEFAULT '2024-02-29 12:34:56.789+00',
	doc jsonb);
CREATE TABLE shop.audit (n serial PRIMARY KEY, what text);
COMMENT ON TABLE shop.orders IS 'one row per order';
CREATE FUNCTION shop.order_total(c int) RETURNS numeric LANGUAGE plpgsql STABLE AS \$\$
BEGIN
	RETURN (SELECT coalesce(sum(total), 0) FROM shop.orders WHERE customer = c);
END \$\$;
CREATE FUNCTION shop.log_order() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO shop.audit(what) VALUES ('order ' || NEW.id);
	RETURN NEW;
END \$\$;
CREATE TRIGGER orders_log AFTER INSERT ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.log_order();
INSERT INTO shop.customer(name, photo) SELECT 'c' || g, CASE WHEN g = 1 THEN
	(SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea ORDER BY b) FROM generate_series(0, 255) b)
	ELSE decode(md5(g::text), 'hex') END FROM generate_series(1, 50) g;
INSERT INTO shop.orders(customer, total, state, doc)
	SELECT 1 + g % 50, g * 1.25, (ARRAY['new','paid','shipped'])[1 + g % 3]::shop.state,
	       jsonb_build_object('g', g, 'note', E'tab\there "quoted" \\\\ back')
	FROM generate_series(1, 2000) g;
CREATE VIEW shop.big_customers AS
	SELECT c.name, shop.order_total(c.id) AS total FROM shop.customer c WHERE shop.order_total(c.id) > 1000;
CREATE MATERIALIZED VIEW shop.per_state AS SELECT state, count(*) AS n FROM shop.orders GROUP BY state;
CREATE TABLE shop.files (name text PRIMARY KEY, content oid);
INSERT INTO shop.files VALUES ('hello', lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8')));
EOF
if [ -n "$EXT" ]; then
	sql "$DB" -c "CREATE EXTENSION $EXT" || fail "CREATE EXTENSION $EXT"
	if [ "$EXT" = pgcrypto ]; then
		sql "$DB" -c "CREATE TABLE shop.secrets (k text, h bytea DEFAULT digest('x', 'sha256'))" \
			-c "INSERT INTO shop.secrets(k) VALUES ('a')"
	else
		sql "$DB" -c "CREATE TABLE shop.props (k text, h hstore)" -c "INSERT INTO shop.props VALUES ('a', 'x=>1, y=>2')"
	fi
fi
AUDIT=$(sql "$DB" -c "SELECT count(*) FROM shop.audit")
assert_eq 2000 "$AUDIT" "audit rows before the backup"
pgdump "$DB" > "$T/src.sql"
[ "$(wc -l < "$T/src.sql")" -gt 2000 ] || fail "pg_dump of the source is too short"

REPO=$T/repo
init_repo "$REPO"
mkdir -p "$T/vol"
echo "volume file" > "$T/vol/a.txt"

# --- 1. one snapshot: a volume and the database -------------------------
expect_exit 0 nopw "$COFFER" -r "$REPO" backup "$T/vol" --postgres "$URL/$DB"
assert_not_contains "$T/out" "$SECRET" "backup output"
assert_not_contains "$T/err" "$SECRET" "backup messages"
cof -r "$REPO" ls latest
assert_contains "$T/out" "/postgres/$DB.sql" "ls shows the dump"
assert_contains "$T/out" "$T/vol/a.txt" "ls shows the volume"
cof -r "$REPO" snapshots --json
"$PY" - "$T/out" "$DB" "$SECRET" <<'EOF' || soft_fail "the snapshot's sources"
import json, sys
snaps = json.load(open(sys.argv[1]))
assert len(snaps) == 1, snaps
src = [s for s in snaps[0]["sources"] if s["kind"] == "postgres"]
assert len(src) == 1, snaps[0]["sources"]
s = src[0]
assert s["path"] == "postgres", s
assert s["databases"] == [{"name": sys.argv[2], "path": "postgres/%s.sql" % sys.argv[2]}], s
assert s["url"].startswith("postgres://") and "@" not in s["url"], s
assert sys.argv[3] not in json.dumps(snaps), "password stored"
EOF

# --- 2. drop, restore, compare ------------------------------------------
sql postgres -c "DROP DATABASE \"$DB\""
expect_exit 0 nopw "$COFFER" -r "$REPO" restore latest --postgres "$URL"
assert_contains "$T/out" "loaded 1 PostgreSQL database" "restore report"
assert_not_contains "$T/err" "$SECRET" "restore messages"
pgdump "$DB" > "$T/restored.sql"
cmp -s "$T/src.sql" "$T/restored.sql" ||
	{ diff "$T/src.sql" "$T/restored.sql" | head -20 >&2; soft_fail "pg_dump of the restored database differs"; }
check_eq 14121 "$(sql "$DB" -c "SELECT nextval('shop.ticket')")" "the sequence continues (start 100, by 7, 2003 calls made)"
check_eq "$AUDIT" "$(sql "$DB" -c "SELECT count(*) FROM shop.audit")" "the trigger did not fire during the load"
check_eq "$(printf 'large object %.0s' $(seq 5000) | sha256sum | cut -c1-64)" \
	"$(sql "$DB" -c "SELECT encode(sha256(lo_get(content)), 'hex') FROM shop.files WHERE name = 'hello'")" \
	"the large object's bytes"
check_eq "$(sql postgres -c "SELECT encode(sha256(string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea ORDER BY b)), 'hex') FROM generate_series(0, 255) b")" \
	"$(sql "$DB" -c "SELECT encode(sha256(photo), 'hex') FROM shop.customer WHERE name = 'c1'")" \
	"bytea of every byte value"
sql "$DB" -c "INSERT INTO shop.orders(customer, total) VALUES (1, 5)"
check_eq $((AUDIT + 1)) "$(sql "$DB" -c "SELECT count(*) FROM shop.audit")" "the trigger fires after the restore"
check_eq 3 "$(sql "$DB" -c "SELECT count(*) FROM shop.per_state")" "the materialized view is populated"
if [ "$EXT" = pgcrypto ]; then
	check_eq "$(printf x | sha256sum | cut -c1-64)" "$(sql "$DB" -c "SELECT encode(digest('x', 'sha256'), 'hex')")" \
		"pgcrypto works in the restored database"
elif [ "$EXT" = hstore ]; then
	check_eq 2 "$(sql "$DB" -c "SELECT h -> 'y' FROM shop.props")" "hstore works in the restored database"
fi

# --- 3. --rename ------------------------------------------------------------
expect_exit 0 nopw "$COFFER" -r "$REPO" restore latest --postgres "$URL" --database "$DB" --rename "$DB=$COPY"
pgdump "$COPY" > "$T/copy.sql"
cmp -s "$T/src.sql" "$T/copy.sql" ||
	{ diff "$T/src.sql" "$T/copy.sql" | head -20 >&2; soft_fail "pg_dump of the renamed copy differs"; }
check_eq $((AUDIT + 1)) "$(sql "$DB" -c "SELECT count(*) FROM shop.audit")" "--rename left the original alone"
expect_exit 1 nopw "$COFFER" -r "$REPO" restore latest --postgres "$URL" --rename "nosuch=x"
assert_one_line_err "--rename of a database the snapshot lacks"
assert_contains "$T/err" "nosuch" "names the missing database"

# --- 4. replace; a failed load changes nothing -------------------------------
expect_exit 0 nopw "$COFFER" -r "$REPO" restore latest --postgres "$URL" --database "$DB"
check_eq "$AUDIT" "$(sql "$DB" -c "SELECT count(*) FROM shop.audit")" "restore over the database replaced it"
sql postgres -c "CREATE ROLE ${P}_owner" -c "CREATE DATABASE \"$OWN\""
sql "$OWN" -c "CREATE TABLE t (x int)" -c "ALTER TABLE t OWNER TO ${P}_owner" -c "INSERT INTO t VALUES (1)"
expect_exit 0 nopw "$COFFER" -r "$REPO" backup --postgres "$URL/$OWN"
sql postgres -c "DROP DATABASE \"$OWN\"" -c "DROP ROLE ${P}_owner" -c "CREATE DATABASE \"$OWN\""
sql "$OWN" -c "CREATE TABLE marker (y int)" -c "INSERT INTO marker VALUES (42)"
expect_exit 1 nopw "$COFFER" -r "$REPO" restore latest --postgres "$URL"
assert_one_line_err "a load that fails"
assert_contains "$T/err" "${P}_owner" "names the missing role"
assert_contains "$T/err" "<stdin>:" "names the line"
check_eq 42 "$(sql "$OWN" -c "SELECT y FROM marker")" "the existing database is untouched by the failed load"
check_eq 0 "$(sql postgres -c "SELECT count(*) FROM pg_database WHERE datname LIKE '%coffer_new%' OR datname LIKE '%coffer_old%'")" \
	"no temporary database is left"
cof -r "$REPO" snapshots --json
NSNAP=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/out")

# --- 5. errors ----------------------------------------------------------------
BAD="postgres://$PGUSER:wrong-$SECRET@$HOSTPORT/$DB"
expect_exit 1 nopw "$COFFER" -r "$REPO" backup --postgres "$BAD"
assert_one_line_err "wrong password"
assert_contains "$T/err" "$PGUSER@" "names the user"
assert_contains "$T/err" "password authentication failed" "says why"
assert_not_contains "$T/err" "wrong-$SECRET" "the password"
expect_exit 1 nopw "$COFFER" -r "$REPO" backup --postgres "$URL/${P}_nosuch"
assert_one_line_err "unknown database"
assert_contains "$T/err" "unknown database '${P}_nosuch'" "names the database"
# a user who may connect but not read one table: pg_dump fails
sql postgres -c "CREATE ROLE ${P}_ro LOGIN PASSWORD 'ro-pw'"
sql "$DB" -c "GRANT USAGE ON SCHEMA shop TO ${P}_ro" -c "GRANT SELECT ON ALL TABLES IN SCHEMA shop TO ${P}_ro" \
	-c "GRANT SELECT ON ALL SEQUENCES IN SCHEMA shop TO ${P}_ro" -c "REVOKE SELECT ON shop.audit FROM ${P}_ro"
expect_exit 1 nopw "$COFFER" -r "$REPO" backup "$T/vol" --postgres "postgres://${P}_ro:ro-pw@$HOSTPORT/$DB"
assert_one_line_err "a failing pg_dump"
assert_contains "$T/err" "pg_dump of database $DB" "names the database"
assert_contains "$T/err" "permission denied" "pg_dump's reason"
assert_not_contains "$T/err" "ro-pw" "the password"
cof -r "$REPO" snapshots --json
check_eq "$NSNAP" "$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/out")" \
	"no snapshot after the failures"

# --- 6. the agent: COFFER_POSTGRES ------------------------------------------
agent_env() {
	nopw env COFFER_REPOSITORY="$REPO" COFFER_BACKUP_PATHS="$T/vol" COFFER_STATE_DIR="$T/state" \
		COFFER_DOCKER_HOST=none COFFER_PRUNE_SCHEDULE=off COFFER_POSTGRES="$URL/$DB" "$@"
}
expect_exit 1 agent_env COFFER_POSTGRES="mysql://x@y/" "$COFFER" agent --print-config
assert_contains "$T/err" "COFFER_POSTGRES" "a bad COFFER_POSTGRES is named"
expect_exit 0 agent_env "$COFFER" agent --print-config
assert_contains "$T/out" "COFFER_POSTGRES" "print-config shows COFFER_POSTGRES"
assert_not_contains "$T/out" "$SECRET" "print-config: the password"
expect_exit 0 agent_env "$COFFER" agent --once
assert_not_contains "$T/err" "$SECRET" "agent log: the password"
cof -r "$REPO" ls latest
assert_contains "$T/out" "/postgres/$DB.sql" "the agent's snapshot holds the dump"
assert_contains "$T/out" "$T/vol/a.txt" "...and the volume"
cof -r "$REPO" snapshots --json latest
"$PY" -c 'import json,sys; s=json.load(open(sys.argv[1]))[-1]; assert any(x["kind"] == "postgres" for x in s["sources"]), s' \
	"$T/out" || soft_fail "the agent's snapshot records the postgres source"
e2e_done
