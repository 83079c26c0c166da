#!/bin/bash
# db_mariadb.sh - `coffer backup --mariadb URL` / `coffer restore --mariadb`
# against a real MariaDB server ($COFFER_TEST_MARIADB, started by
# tests/infra/mariadb-up.sh; skipped when unset).  What a user checks:
#  1. a database holding the awkward cases (NULLs, BLOBs of every byte value,
#     a 3 MB BLOB, utf8mb4 emoji, a latin1 column, NUL inside text, DECIMAL,
#     DATETIME(6)/TIMESTAMP(6), BIT, YEAR, JSON, generated columns, an id 0 in
#     an AUTO_INCREMENT column, a foreign key, a view on a view, a trigger, a
#     procedure, a function, an event, a MyISAM table) is dumped together
#     with a volume path into ONE snapshot; the MyISAM table is named in a
#     warning; `ls` shows mariadb/<db>.sql;
#  2. `restore --mariadb --database DB --rename DB=NEW` gives a database
#     whose every table has the same CHECKSUM TABLE and the same rows (and a
#     few values checked literally), the same definitions of tables, views,
#     routines, triggers and events, and whose trigger did not fire during
#     the load; the routines work;
#  3. the stored file, restored as a plain file (--include /mariadb) and
#     streamed by `coffer dump`, loads with the stock `mariadb --comments`
#     client (piped from coffer dump) to the same content;
#  4. consistency: while a writer moves money between accounts (one
#     transaction per transfer, logged in a transfers table), the backup's
#     restored copy satisfies the invariant (every balance = start + ins -
#     outs, total unchanged), and holds the transfers committed before the
#     backup but not those after;
#  5. a URL without a database list dumps every user database and no system
#     schema, and several --mariadb options (two servers) go into one
#     snapshot and both restore (a private second server, started here with
#     tests/infra/mariadb-up.sh when mariadbd is available);
#  6. errors: wrong password (user@host named, password not printed),
#     unreachable server, unknown database: exit 1, one line, no snapshot;
#     a failing statement during restore names the database and the line
#     and leaves no database behind;
#     --database not in the snapshot is named.
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set (tests/infra/mariadb-up.sh)"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"
e2e_setup

URL=${COFFER_TEST_MARIADB%/}
# connection options for the stock client, from the URL
eval "$(mariadb_vars "$URL")"
sql() { mariadb "${MDB_ARGS[@]}" --default-character-set=utf8mb4 "$@"; }
q() { sql -N -B -e "SET time_zone='+00:00'; $1"; }

P=cfe2e_$$_$RANDOM
SHOP=${P}_shop BANK=${P}_bank
cleanup_dbs()
{
	local d
	for d in $(q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${P}%'" 2>/dev/null); do
		q "DROP DATABASE \`$d\`" 2>/dev/null
	done
}
MDB2_BASE=
on_exit()
{
	cleanup_dbs
	[ -n "$MDB2_BASE" ] && MDB_BASE=$MDB2_BASE sh "$COFFER_SOURCE_DIR/tests/infra/mariadb-down.sh" > /dev/null 2>&1
	e2e_cleanup
}
trap on_exit EXIT
: "${COFFER_SOURCE_DIR:=$(cd "$(dirname "$0")/../.." && pwd)}"

R=$T/repo
init_repo "$R"
mkdir -p "$T/vol" && echo "volume file" > "$T/vol/readme"
snapcount()
{
	"$COFFER" -r "$R" --json snapshots > "$T/snaps.json" || fail "snapshots --json"
	json_field "$T/snaps.json" 'len(j)'
}

# ---------------------------------------------------------------- the schema
ALL256=$("$PY" -c 'print(bytes(range(256)).hex())')
cat > "$T/shop.sql" <<EOF
CREATE DATABASE \`$SHOP\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE \`$SHOP\`;
SET time_zone = '+00:00';
CREATE TABLE customers (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  legacy_name VARCHAR(100) CHARACTER SET latin1 NULL,
  note TEXT NULL,
  avatar LONGBLOB NULL,
  tag VARBINARY(64) NULL,
  balance DECIMAL(30,10) NULL,
  ratio DOUBLE NULL,
  born DATE NULL,
  seen DATETIME(6) NULL,
  touched TIMESTAMP(6) NULL DEFAULT NULL,
  flags BIT(10) NULL,
  yr YEAR NULL,
  kind ENUM('a','b','c') NULL,
  doc JSON NULL,
  name_len INT AS (CHAR_LENGTH(name)) VIRTUAL,
  name_upper VARCHAR(100) AS (UPPER(name)) STORED
) ENGINE=InnoDB;
CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created DATETIME(6) NOT NULL,
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(200) NOT NULL) ENGINE=InnoDB;
CREATE TABLE legacy_log (id INT PRIMARY KEY, line VARCHAR(200)) ENGINE=MyISAM;

SET @old_mode = @@sql_mode;
SET sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO');
INSERT INTO customers (id, name) VALUES (0, 'zero id');
SET sql_mode = @old_mode;
INSERT INTO customers (id, name, legacy_name, note, avatar, tag, balance, ratio, born, seen, touched, flags, yr, kind, doc) VALUES
 (1, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, 'Zoë 😀🎉 \'quoted\' "double" back\\\\slash', 'café', CONCAT('line1\nline2\ttab ', CHAR(0), ' nul; -- not a comment /* nor this */'),
     UNHEX('$ALL256'), UNHEX('00FF00FF27225C0A0D1A'), -12345678901234567890.0123456789, 0.1,
     '2024-02-29', '2024-02-29 23:59:59.123456', '2038-01-19 03:14:07.999999', b'1010101010', 2155, 'b',
     '{"k": [1, "ü", null], "e": "😀"}'),
 (3, 'big blob', 'x', '', REPEAT(UNHEX('$ALL256'), 12000), '', 0.0000000001, 1.7976931348623157e308,
     '1000-01-01', '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01.000000', b'0', 1901, 'c', '[]'),
 (4, 'max', NULL, 'DELIMITER ;;', NULL, NULL, 99999999999999999999.9999999999, -2.5e-300,
     '9999-12-31', '9999-12-31 23:59:59.999999', NULL, b'1111111111', 0, 'a', NULL);
INSERT INTO orders (customer_id, amount, created) VALUES
 (2, 10.50, '2024-01-01 10:00:00.5'), (2, 99.99, '2024-01-02 11:00:00.000001'), (3, 0.01, NOW(6));
INSERT INTO legacy_log VALUES (1, 'myisam row'), (2, NULL);

DELIMITER ;;
CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW
BEGIN
  -- a comment inside the body; with a semicolon
  INSERT INTO audit (msg) VALUES (CONCAT('order ', NEW.id, '; amount ', NEW.amount));
END;;
CREATE PROCEDURE add_order(IN c INT, IN a DECIMAL(12,2))
COMMENT 'adds an order; fires the trigger'
BEGIN
  /* block comment; with a semicolon */
  INSERT INTO orders (customer_id, amount, created) VALUES (c, a, NOW(6)); # hash comment
END;;
CREATE FUNCTION total_for(c INT) RETURNS DECIMAL(30,2) READS SQL DATA
RETURN (SELECT COALESCE(SUM(amount), 0) FROM orders WHERE customer_id = c);;
CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE
COMMENT 'nightly; purge' DO DELETE FROM audit WHERE id < 0;;
DELIMITER ;
CREATE VIEW v_orders AS SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id;
-- a view on a view whose name sorts first
CREATE VIEW v_big AS SELECT * FROM v_orders WHERE amount > 10;
EOF
sql < "$T/shop.sql" || fail "creating the test schema"
# the trigger fires on the inserts above only if created before them: it was
# not, so audit is empty now; one call makes one audit row to carry over
sql "$SHOP" -e "CALL add_order(2, 20.00)" || fail "CALL add_order"

# consistency database: accounts first, a filler table that takes a while to
# dump, then the transfers log (tables are dumped in name order)
sql <<EOF || fail "creating the bank schema"
CREATE DATABASE \`$BANK\`;
USE \`$BANK\`;
CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
INSERT INTO accounts SELECT seq, 1000000 FROM seq_1_to_10;
CREATE TABLE filler (id INT PRIMARY KEY, pad VARCHAR(300) NOT NULL) ENGINE=InnoDB;
INSERT INTO filler SELECT seq, REPEAT(MD5(seq), 8) FROM seq_1_to_200000;
CREATE TABLE transfers (id BIGINT AUTO_INCREMENT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL,
  amount INT NOT NULL) ENGINE=InnoDB;
EOF

# -------------------------------------------- 1+4. backup with a writer running
cat > "$T/writer.py" <<'EOF'
import random, sys
r = random.Random(7)
out = sys.stdout
while True:
    s, d = r.sample(range(1, 11), 2)
    a = r.randint(1, 500)
    out.write("START TRANSACTION; UPDATE accounts SET balance = balance - %d WHERE id = %d; "
              "UPDATE accounts SET balance = balance + %d WHERE id = %d; "
              "INSERT INTO transfers (src, dst, amount) VALUES (%d, %d, %d); COMMIT;\n"
              % (a, s, a, d, s, d, a))
EOF
("$PY" "$T/writer.py" 2>/dev/null | sql "$BANK" 2> "$T/writer.err") &
WRITER=$!
E2E_PIDS+=("$WRITER")
ntransfers() { q "SELECT COUNT(*) FROM \`$BANK\`.transfers"; }
wait_for sh -c "[ \$(mariadb $(printf '%q ' "${MDB_ARGS[@]}") -N -B -e 'SELECT COUNT(*) FROM \`$BANK\`.transfers') -gt 200 ]" ||
	fail "the writer does not commit: $(cat "$T/writer.err")"

before=$(ntransfers)
/usr/bin/time -f '%e s %M KiB' -o "$T/time1" \
	"$COFFER" -r "$R" backup "$T/vol" --mariadb "$URL/$SHOP,$BANK" > "$T/out" 2> "$T/err" ||
	{ cat "$T/out" "$T/err" >&2; fail "backup --mariadb failed"; }
after=$(ntransfers)
note "backup of $SHOP and $BANK with a writer running: $(cat "$T/time1"); transfers $before before, $after after"
[ "$after" -gt "$before" ] || soft_fail "the writer committed nothing during the backup"
assert_contains "$T/err" "tables without transactions" "warning about non-transactional tables"
assert_contains "$T/err" "legacy_log" "the MyISAM table is named in the warning"
grep -F "tables without transactions" "$T/err" | grep -qE 'customers|orders|audit|accounts' &&
	soft_fail "InnoDB tables listed as non-transactional: $(cat "$T/err")"
check_eq 1 "$(snapcount)" "snapshots after one backup"

cof -r "$R" ls latest
assert_contains "$T/out" "/mariadb/$SHOP.sql" "ls shows the shop dump"
assert_contains "$T/out" "/mariadb/$BANK.sql" "ls shows the bank dump"
assert_contains "$T/out" "$T/vol/readme" "the volume is in the same snapshot"
SNAP1=$(latest_id "$R")

# -------------------------------------------- 2. restore under a new name
cof -r "$R" restore "$SNAP1" --mariadb "$URL" --database "$SHOP" --rename "$SHOP=${SHOP}_r"
assert_contains "$T/out" "loaded 1 database" "restore reports the database loaded"
[ -z "$(q "SHOW DATABASES LIKE '${BANK}_%'")" ] || soft_fail "--database $SHOP also loaded $BANK"

TABLES="audit customers legacy_log orders"
table_rows()  # DB TABLE: every row, every column, binary as hex, in key order
{
	local cols
	cols=$(q "SELECT GROUP_CONCAT(CONCAT('HEX(\`', COLUMN_NAME, '\`)') ORDER BY ORDINAL_POSITION)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='$1' AND TABLE_NAME='$2'")
	q "SELECT $cols FROM \`$1\`.\`$2\` ORDER BY 1"
}
objdefs()  # DB: definitions of every object, the database name replaced by DB
{
	local t
	{
		for t in $TABLES; do q "SHOW CREATE TABLE \`$1\`.\`$t\`" | cut -f2; done
		q "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE, DEFINER FROM information_schema.VIEWS
		   WHERE TABLE_SCHEMA='$1' ORDER BY 1"
		q "SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, IS_DETERMINISTIC,
		   SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_COMMENT, DEFINER FROM information_schema.ROUTINES
		   WHERE ROUTINE_SCHEMA='$1' ORDER BY 1"
		q "SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER
		   FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA='$1' ORDER BY 1, 2"
		q "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_TIMING, ACTION_STATEMENT,
		   SQL_MODE, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='$1' ORDER BY 1"
		q "SELECT EVENT_NAME, EVENT_DEFINITION, EVENT_TYPE, INTERVAL_VALUE, INTERVAL_FIELD, STARTS, STATUS,
		   ON_COMPLETION, SQL_MODE, EVENT_COMMENT, TIME_ZONE FROM information_schema.EVENTS
		   WHERE EVENT_SCHEMA='$1' ORDER BY 1"
	} | sed "s/$1/DB/g"
}
compare_db()  # SRC DST WHAT
{
	local t a b
	for t in $TABLES; do
		a=$(q "CHECKSUM TABLE \`$1\`.\`$t\` EXTENDED" | cut -f2)
		b=$(q "CHECKSUM TABLE \`$2\`.\`$t\` EXTENDED" | cut -f2)
		[ -n "$a" ] && [ "$a" != NULL ] || soft_fail "$3: no checksum for $1.$t"
		check_eq "$a" "$b" "$3: CHECKSUM TABLE $t"
		table_rows "$1" "$t" > "$T/rows.a"
		table_rows "$2" "$t" > "$T/rows.b"
		cmp -s "$T/rows.a" "$T/rows.b" ||
			soft_fail "$3: rows of $t differ: $(diff "$T/rows.a" "$T/rows.b" | cut -c1-200 | head -5)"
	done
	objdefs "$1" > "$T/defs.a"
	objdefs "$2" > "$T/defs.b"
	[ "$(wc -l < "$T/defs.a")" -ge 12 ] || soft_fail "$3: too few definitions read from $1"
	cmp -s "$T/defs.a" "$T/defs.b" ||
		soft_fail "$3: definitions differ: $(diff "$T/defs.a" "$T/defs.b" | head -20)"
}
check_values()  # DB WHAT: a few values as the user wrote them
{
	check_eq 5 "$(q "SELECT COUNT(*) FROM \`$1\`.customers")" "$2: customers"
	check_eq 0 "$(q "SELECT id FROM \`$1\`.customers WHERE name = 'zero id'")" "$2: id 0 kept"
	check_eq "$ALL256" "$(q "SELECT LOWER(HEX(avatar)) FROM \`$1\`.customers WHERE id = 2")" "$2: BLOB of all byte values"
	check_eq "$((256 * 12000))" "$(q "SELECT LENGTH(avatar) FROM \`$1\`.customers WHERE id = 3")" "$2: 3 MB BLOB length"
	check_eq "$(printf '%s' 'Zoë 😀🎉' | od -An -tx1 | tr -d ' \n')" \
		"$(q "SELECT LOWER(HEX(LEFT(name, 6))) FROM \`$1\`.customers WHERE id = 2")" "$2: utf8mb4 emoji bytes"
	check_eq "636166e9" "$(q "SELECT LOWER(HEX(legacy_name)) FROM \`$1\`.customers WHERE id = 2")" "$2: latin1 column stays latin1"
	check_eq 1 "$(q "SELECT LOCATE(CHAR(0), note) > 0 FROM \`$1\`.customers WHERE id = 2")" "$2: NUL inside text"
	check_eq "-12345678901234567890.0123456789" "$(q "SELECT balance FROM \`$1\`.customers WHERE id = 2")" "$2: DECIMAL"
	check_eq "99999999999999999999.9999999999" "$(q "SELECT balance FROM \`$1\`.customers WHERE id = 4")" "$2: DECIMAL max"
	check_eq "2024-02-29 23:59:59.123456" "$(q "SELECT seen FROM \`$1\`.customers WHERE id = 2")" "$2: DATETIME(6)"
	check_eq "2038-01-19 03:14:07.999999" "$(q "SELECT touched FROM \`$1\`.customers WHERE id = 2")" "$2: TIMESTAMP(6)"
	check_eq "1" "$(q "SELECT ratio = 0.1 FROM \`$1\`.customers WHERE id = 2")" "$2: DOUBLE 0.1 exact"
	check_eq "1.7976931348623157e308" "$(q "SELECT ratio FROM \`$1\`.customers WHERE id = 3")" "$2: DOUBLE max"
	check_eq "12" "$(q "SELECT SUM(note IS NULL) + SUM(avatar IS NULL) + SUM(balance IS NULL) + SUM(seen IS NULL) + SUM(doc IS NULL)
		FROM \`$1\`.customers")" "$2: NULL count"
	check_eq "1" "$(q "SELECT note = '' FROM \`$1\`.customers WHERE id = 3")" "$2: empty string is not NULL"
	check_eq "ZOË 😀🎉" "$(q "SELECT LEFT(name_upper, 6) FROM \`$1\`.customers WHERE id = 2")" "$2: STORED generated column recomputed"
	check_eq 1 "$(q "SELECT COUNT(*) FROM \`$1\`.audit")" "$2: audit rows (the trigger must not fire during the load)"
	check_eq 3 "$(q "SELECT COUNT(*) FROM \`$1\`.v_big")" "$2: view on a view"
	check_eq 130.49 "$(q "SELECT \`$1\`.total_for(2)")" "$2: function"
	check_eq "2 myisam row" "$(q "SELECT COUNT(*), MIN(line) FROM \`$1\`.legacy_log" | tr '\t' ' ')" "$2: MyISAM rows"
}
compare_db "$SHOP" "${SHOP}_r" "restore --rename"
check_values "${SHOP}_r" "restore --rename"

# -------------------------------------------- 4. consistency under the writer
kill -TERM "$WRITER" 2>/dev/null
wait "$WRITER" 2>/dev/null
sleep 0.2
final=$(ntransfers)
cof -r "$R" restore "$SNAP1" --mariadb "$URL" --database "$BANK" --rename "$BANK=${BANK}_r"
nr=$(q "SELECT COUNT(*) FROM \`${BANK}_r\`.transfers")
note "restored $nr transfers (before the backup $before, after $after, in the end $final)"
[ "$nr" -ge "$before" ] && [ "$nr" -le "$after" ] ||
	soft_fail "restored $nr transfers, not between $before and $after"
[ "$nr" -lt "$final" ] || soft_fail "the writer's later transfers ($final) should be absent, got $nr"
check_eq 10000000 "$(q "SELECT SUM(balance) FROM \`${BANK}_r\`.accounts")" "restored total balance"
check_eq 0 "$(q "SELECT COUNT(*) FROM \`${BANK}_r\`.accounts a WHERE balance != 1000000
	- (SELECT COALESCE(SUM(amount), 0) FROM \`${BANK}_r\`.transfers WHERE src = a.id)
	+ (SELECT COALESCE(SUM(amount), 0) FROM \`${BANK}_r\`.transfers WHERE dst = a.id)")" \
	"accounts whose restored balance disagrees with the restored transfer log"
check_eq 200000 "$(q "SELECT COUNT(*) FROM \`${BANK}_r\`.filler")" "filler rows"

# -------------------------------------------- 3. the stock client loads the file
cof -r "$R" restore "$SNAP1" --target "$T/files" --include /mariadb
[ -f "$T/files/mariadb/$SHOP.sql" ] || fail "restore --include /mariadb did not give mariadb/$SHOP.sql"
[ ! -e "$T/files/$T/vol" ] || soft_fail "--include /mariadb restored the volume too"
tail -n 1 "$T/files/mariadb/$SHOP.sql" | grep -q 'coffer dump complete' || soft_fail "dump lacks its end marker"
# `coffer dump` streams the same file, byte for byte
"$COFFER" -r "$R" dump "$SNAP1" "/mariadb/$SHOP.sql" > "$T/dumped.sql" || fail "coffer dump of the SQL file"
cmp -s "$T/dumped.sql" "$T/files/mariadb/$SHOP.sql" || soft_fail "coffer dump differs from the restored file"
q "DROP DATABASE \`$SHOP\`"
"$COFFER" -r "$R" dump "$SNAP1" "/mariadb/$SHOP.sql" | sql --comments 2> "$T/client.err" ||
	soft_fail "the stock mariadb client refused the dump piped from coffer dump: $(head -3 "$T/client.err")"
compare_db "${SHOP}_r" "$SHOP" "stock client load"
check_values "$SHOP" "stock client load"

# the restored procedure and trigger work in the renamed copy, on its own tables
q "CALL \`${SHOP}_r\`.add_order(3, 5.00)" || soft_fail "CALL in the restored database"
check_eq 2 "$(q "SELECT COUNT(*) FROM \`${SHOP}_r\`.audit")" "the restored trigger fires on a new order"
check_eq 4 "$(q "SELECT COUNT(*) FROM \`${SHOP}\`.orders")" "the CALL in the copy left the original alone"

# -------------------------------------------- 5. all databases; two servers
MDB2_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [ "$(id -u)" = 0 ] && { command -v mariadbd || [ -x /usr/sbin/mariadbd ]; } > /dev/null 2>&1 &&
	MDB_BASE=$T/mdb2 MDB_PORT=$MDB2_PORT sh "$COFFER_SOURCE_DIR/tests/infra/mariadb-up.sh" > "$T/mdb2.log" 2>&1; then
	MDB2_BASE=$T/mdb2
	URL2="mariadb://coffer:coffer-test@127.0.0.1:$MDB2_PORT"
	sql2() { mariadb --no-defaults -ucoffer -pcoffer-test -h127.0.0.1 -P"$MDB2_PORT" --protocol=tcp -N -B "$@"; }
	sql2 -e "CREATE DATABASE alpha; CREATE TABLE alpha.t (v VARCHAR(20)); INSERT INTO alpha.t VALUES ('alpha row');
		CREATE DATABASE \`we ird,name\`; CREATE TABLE \`we ird,name\`.t (v INT); INSERT INTO \`we ird,name\`.t VALUES (7);" ||
		fail "filling the second server"
	cof -r "$R" backup "$T/vol" --mariadb "$URL2/"
	cof -r "$R" ls latest
	assert_contains "$T/out" "/mariadb/alpha.sql" "all databases: alpha"
	assert_contains "$T/out" "/mariadb/we ird,name.sql" "all databases: a name with a space and a comma"
	for sys in mysql sys information_schema performance_schema; do
		assert_not_contains "$T/out" "/mariadb/$sys.sql" "system schema $sys"
	done
	check_eq 2 "$(grep -c '^/mariadb/' "$T/out")" "dumps under /mariadb"

	# two servers in one snapshot; both restore
	cof -r "$R" backup "$T/vol" --mariadb "$URL/$SHOP" --mariadb "$URL2/alpha" --mariadb-lock
	cof -r "$R" ls latest
	assert_contains "$T/out" "/mariadb/$SHOP.sql" "two servers: the first server's dump"
	grep -q "^/mariadb/.*/alpha.sql$" "$T/out" || soft_fail "two servers: the second server's dump is not listed"
	sub=$(sed -n 's|^/mariadb/\(.*\)/alpha\.sql$|\1|p' "$T/out")
	cof -r "$R" restore latest --mariadb "$URL2" --rename "$SHOP=${P}_from1" --rename "alpha=${P}_from2"
	assert_contains "$T/out" "loaded 2 databases" "two servers: both restored"
	check_eq "alpha row" "$(sql2 -e "SELECT v FROM \`${P}_from2\`.t")" "two servers: second server's data"
	check_eq 5 "$(sql2 -e "SELECT COUNT(*) FROM \`${P}_from1\`.customers")" "two servers: first server's data"
	# a dump of the second server picked by its qualified name
	cof -r "$R" restore latest --mariadb "$URL2" --database "$sub/alpha" --rename "$sub/alpha=${P}_q"
	assert_contains "$T/out" "loaded 1 database" "--database SERVER/DB"
	check_eq "alpha row" "$(sql2 -e "SELECT v FROM \`${P}_q\`.t")" "--rename SERVER/DB=NEW"
else
	note "skipping the all-databases and two-servers part: cannot start a private mariadbd (needs root): $(tail -2 "$T/mdb2.log" 2>/dev/null)"
	# still: several --mariadb options for one server, into one snapshot
	cof -r "$R" backup --mariadb "$URL/$SHOP" --mariadb "$URL/$BANK"
	cof -r "$R" ls latest
	assert_contains "$T/out" "/mariadb/$SHOP.sql" "two --mariadb: first"
	assert_contains "$T/out" "$BANK.sql" "two --mariadb: second"
fi

# -------------------------------------------- 6. errors
n0=$(snapcount)
expect_exit 1 "$COFFER" -r "$R" backup "$T/vol" --mariadb "mariadb://${MDB_USERHOST%@*}:wrong-secret@${URL#*@}/$SHOP"
assert_contains "$T/err" "$MDB_USERHOST" "wrong password: user@host named"
assert_contains "$T/err" "Access denied" "wrong password: the server's reason"
assert_not_contains "$T/err" "wrong-secret" "wrong password: the password is not printed"
assert_one_line_err "wrong password"
check_eq "$n0" "$(snapcount)" "snapshots after a wrong password"

# the password from MARIADB_PASSWORD_FILE instead of the URL
pw=$("$PY" -c 'import sys,urllib.parse; print(urllib.parse.unquote(urllib.parse.urlsplit(sys.argv[1]).password or ""))' "$URL")
if [ -n "$pw" ]; then
	printf '%s\n' "$pw" > "$T/mdbpw"
	MARIADB_PASSWORD_FILE=$T/mdbpw cof -r "$R" backup --mariadb "mariadb://${MDB_USERHOST%@*}@${URL#*@}/$SHOP"
	n0=$((n0 + 1))
	check_eq "$n0" "$(snapcount)" "backup with MARIADB_PASSWORD_FILE"
fi

port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_exit 1 "$COFFER" -r "$R" backup "$T/vol" --mariadb "mariadb://coffer:x@127.0.0.1:$port/"
assert_contains "$T/err" "127.0.0.1:$port" "unreachable server: host and port named"
assert_contains "$T/err" "connect" "unreachable server: says it cannot connect"
assert_one_line_err "unreachable server"

expect_exit 1 "$COFFER" -r "$R" backup "$T/vol" --mariadb "$URL/$SHOP,${P}_nosuch"
assert_contains "$T/err" "unknown database '${P}_nosuch'" "unknown database named"
assert_one_line_err "unknown database"
check_eq "$n0" "$(snapcount)" "snapshots after the failed backups"

# a dump whose 7th line fails: the message names the database and the line
printf '%s\n' "CREATE DATABASE IF NOT EXISTS \`broken\`;" "USE \`broken\`;" \
	"CREATE TABLE t (id INT PRIMARY KEY);" "INSERT INTO t VALUES (1)," "(2);" "-- a comment" \
	"INSERT INTO t VALUES (2);" "INSERT INTO t VALUES (3);" > "$T/broken.sql"
cof -r "$R" backup --stdin-from-command "cat $T/broken.sql" --stdin-filename mariadb/broken.sql
expect_exit 1 "$COFFER" -r "$R" restore latest --mariadb "$URL" --rename "broken=${P}_broken"
assert_contains "$T/err" "broken" "failing statement: database named"
assert_contains "$T/err" "line 7" "failing statement: line named"
assert_contains "$T/err" "Duplicate entry" "failing statement: the server's message"
check_eq "" "$(q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${P}\\_broken%'")" \
	"a failing dump leaves no database behind (neither the target nor a temporary one)"

expect_exit 1 "$COFFER" -r "$R" restore "$SNAP1" --mariadb "$URL" --database "${P}_absent"
assert_contains "$T/err" "${P}_absent" "--database not in the snapshot is named"
assert_one_line_err "--database not in the snapshot"
expect_exit 1 "$COFFER" -r "$R" restore "$SNAP1" --mariadb "$URL" --rename "nonsense"
assert_contains "$T/err" "OLD=NEW" "malformed --rename"

e2e_done
