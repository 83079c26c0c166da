#!/bin/bash
# db_replace.sh - `coffer restore --mariadb` replaces a database whole and
# never leaves it half-loaded (issue 20 item 2), against a real MariaDB
# ($COFFER_TEST_MARIADB; skipped when unset).  What a user checks:
#  1. a snapshot of a database with a foreign key, a sequence used as a
#     DEFAULT, a view on a view, a trigger, a procedure, a function and an
#     event; the live database then changes (rows, a new table, view,
#     procedure and event, a dropped table);
#  2. a dump that fails mid-way (a duplicate key in its second table; a dump
#     cut short inside a string) is refused naming the database and the
#     line, and the live database is exactly as it was (every table's
#     CHECKSUM TABLE, the list of its tables, views, routines, triggers and
#     events), with no temporary database or table left behind;
#  3. restoring the snapshot gives exactly the snapshot's database: the
#     tables, views, routines, triggers and events it had and no others,
#     every CHECKSUM TABLE equal to the one at backup time; the trigger
#     fires, the procedure and the DEFAULT NEXTVAL() work; nothing
#     temporary is left;
#  4. two databases of which one fails: the other is restored, both are
#     named, exit 3.
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set (tests/infra/mariadb-up.sh)"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"
e2e_setup

URL=${COFFER_TEST_MARIADB%/}
eval "$(mariadb_vars "$URL")"
sql() { mariadb "${MDB_ARGS[@]}" --default-character-set=utf8mb4 "$@"; }
q() { sql -N -B -e "SET time_zone='+00:00'; $1"; }

P=cfrep_$$_$RANDOM
DB=${P}_app OTHER=${P}_other
on_exit()
{
	local d
	for d in $(q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${P}%'" 2>/dev/null); do
		q "DROP DATABASE \`$d\`" 2>/dev/null
	done
	e2e_cleanup
}
trap on_exit EXIT

R=$T/repo
init_repo "$R"

sql <<EOF || fail "creating the test schema"
CREATE DATABASE \`$DB\`;
USE \`$DB\`;
CREATE SEQUENCE ids START WITH 1000;
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY DEFAULT NEXTVAL(ids), pid INT NOT NULL, v VARCHAR(50),
  CONSTRAINT fk_child FOREIGN KEY (pid) REFERENCES parent (id)) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(100)) ENGINE=InnoDB;
CREATE TABLE gone_later (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO parent SELECT seq, CONCAT('p', seq) FROM seq_1_to_50;
INSERT INTO child (pid, v) SELECT 1 + seq % 50, MD5(seq) FROM seq_1_to_500;
INSERT INTO gone_later VALUES (1), (2);
DELIMITER ;;
CREATE TRIGGER child_ai AFTER INSERT ON child FOR EACH ROW INSERT INTO audit (msg) VALUES (CONCAT('child ', NEW.id));;
CREATE PROCEDURE add_child(IN p INT) BEGIN INSERT INTO child (pid, v) VALUES (p, 'proc'); END;;
CREATE FUNCTION nchild(p INT) RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM child WHERE pid = p);;
CREATE EVENT ev_keep ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;;
DELIMITER ;
CREATE VIEW v_child AS SELECT c.id, p.name, c.v FROM child c JOIN parent p ON p.id = c.pid;
CREATE VIEW v_top AS SELECT * FROM v_child WHERE id < 1010;
EOF

# What a user compares: every table's checksum and the object lists.
state()
{
	local t
	for t in $(q "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$1' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1"); do
		q "CHECKSUM TABLE \`$1\`.\`$t\`" | sed "s/^$1\.//"
	done
	q "SELECT 'table', TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$1' ORDER BY 2"
	q "SELECT 'routine', ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '$1' ORDER BY 2, 3"
	q "SELECT 'trigger', TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '$1' ORDER BY 2"
	q "SELECT 'event', EVENT_NAME, STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '$1' ORDER BY 2"
	q "SELECT 'seq', NEXT_NOT_CACHED_VALUE FROM \`$1\`.ids" 2>/dev/null
}
leftovers()
{
	q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${P}%coffer%'
	   UNION ALL SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES
	   WHERE TABLE_SCHEMA LIKE '${P}%' AND TABLE_NAME LIKE '%coffer%'"
}

state "$DB" > "$T/at_backup"
cof -r "$R" backup --mariadb "$URL/$DB"
SNAP=$(latest_id "$R")

# ------------------------------------------------------ 1. the live database moves on
sql "$DB" <<EOF || fail "changing the live database"
UPDATE parent SET name = CONCAT(name, '-live') WHERE id <= 10;
DELETE FROM child WHERE id > 1400;
CALL add_child(3);
DROP TABLE gone_later;
CREATE TABLE added_later (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO added_later VALUES (7);
CREATE VIEW v_later AS SELECT id FROM added_later;
CREATE PROCEDURE p_later() SELECT 1;
CREATE EVENT ev_later ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO SELECT 1;
EOF
state "$DB" > "$T/live"
cmp -s "$T/at_backup" "$T/live" && fail "the live changes did not change the state"

# ------------------------------------------------ 2. failing dumps change nothing
"$COFFER" -r "$R" dump "$SNAP" "/mariadb/$DB.sql" > "$T/good.sql" || fail "coffer dump"
grep -q '^-- coffer dump complete' "$T/good.sql" || fail "the stored dump is not complete"
# a duplicate key in the second table's rows (child sorts after audit)
"$PY" - "$T/good.sql" "$T/dup.sql" <<'EOF'
import sys
s = open(sys.argv[1], encoding="utf-8", errors="surrogateescape").read()
i = s.index("INSERT INTO `child`")
j = s.index(";\n", i)
# the first row again at the end of the statement
first = s[s.index("(", s.index("VALUES", i)):s.index("),\n", i) + 1]
s = s[:j] + ",\n" + first + s[j:]
open(sys.argv[2], "w", encoding="utf-8", errors="surrogateescape").write(s)
EOF
# cut short inside a quoted string in the middle of the rows
"$PY" - "$T/good.sql" "$T/cut.sql" <<'EOF'
import sys
s = open(sys.argv[1], "rb").read()
i = s.index(b"INSERT INTO `parent`")
j = s.index(b"'p2", i)
open(sys.argv[2], "wb").write(s[:j + 2])
EOF
for bad in dup cut; do
	cof -r "$R" backup --stdin-from-command "cat $T/$bad.sql" --stdin-filename "mariadb/$DB.sql"
	expect_exit 1 "$COFFER" -r "$R" restore latest --mariadb "$URL"
	assert_contains "$T/err" "$DB" "$bad dump: database named"
	assert_contains "$T/err" "line " "$bad dump: line named"
	assert_contains "$T/err" "left as it was" "$bad dump: says the database is unchanged"
	state "$DB" > "$T/after_$bad"
	cmp -s "$T/live" "$T/after_$bad" ||
		soft_fail "$bad dump: the live database changed: $(diff "$T/live" "$T/after_$bad" | head -20)"
	check_eq "" "$(leftovers)" "$bad dump: temporary databases or tables left"
done


# ----------------------------------------------- 3. the real restore: exactly the snapshot
cof -r "$R" -v restore "$SNAP" --mariadb "$URL"
note "$(grep -o 'remade .* after the tables were swapped in' "$T/err")"
state "$DB" > "$T/restored"
cmp -s "$T/at_backup" "$T/restored" ||
	soft_fail "restored database differs from the snapshot: $(diff "$T/at_backup" "$T/restored" | head -20)"
check_eq "" "$(leftovers)" "restore: temporary databases or tables left"
sql "$DB" -e "CALL add_child(5)" || soft_fail "the restored procedure does not run"
check_eq "1" "$(q "SELECT COUNT(*) FROM \`$DB\`.audit WHERE msg = CONCAT('child ', (SELECT MAX(id) FROM \`$DB\`.child))")" \
	"the restored trigger fires"
check_eq "1000" "$(q "SELECT MIN(id) FROM \`$DB\`.child")" "rows from the sequence default"
q "SHOW CREATE TABLE \`$DB\`.child" | grep -q "nextval(\`$DB\`.\`ids\`)" ||
	soft_fail "the DEFAULT NEXTVAL() does not point at the restored database's sequence: $(q "SHOW CREATE TABLE \`$DB\`.child")"
check_eq "10" "$(q "SELECT COUNT(*) FROM \`$DB\`.v_top")" "the view on a view reads the restored tables"

# --------------------------------------------- 4. one of two fails: the other is restored
sql <<EOF || fail "creating the second database"
CREATE DATABASE \`$OTHER\`;
CREATE TABLE \`$OTHER\`.t (id INT PRIMARY KEY);
INSERT INTO \`$OTHER\`.t VALUES (1), (2), (3);
EOF
cof -r "$R" backup --mariadb "$URL/$DB,$OTHER"
SNAP2=$(latest_id "$R")
q "DELETE FROM \`$OTHER\`.t"
"$COFFER" -r "$R" dump "$SNAP2" "/mariadb/$OTHER.sql" > "$T/other.sql" || fail "coffer dump"
cof -r "$R" backup --stdin-from-command "cat $T/cut.sql" --stdin-filename "mariadb/$DB.sql" \
	--stdin-from-command "cat $T/other.sql" --stdin-filename "mariadb/$OTHER.sql"
state "$DB" > "$T/before_two"
expect_exit 3 "$COFFER" -r "$R" restore latest --mariadb "$URL"
assert_contains "$T/err" "$DB" "two databases: the failing one named"
check_eq "3" "$(q "SELECT COUNT(*) FROM \`$OTHER\`.t")" "two databases: the good one restored after the failing one"
state "$DB" > "$T/after_two"
cmp -s "$T/before_two" "$T/after_two" || soft_fail "two databases: the failing one changed"
check_eq "" "$(leftovers)" "two databases: temporary databases or tables left"

e2e_done
