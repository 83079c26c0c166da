#!/bin/bash
# db_bigrow.sh - a row bigger than the target's max_allowed_packet backs up
# and restores (issue 25 item 5), against a real MariaDB
# ($COFFER_TEST_MARIADB; skipped when unset).  The test server's global
# max_allowed_packet is set to 16M for the backup and the restore (64M while
# the data is made) and put back at the end.  What a user checks:
#  1. a 12 MiB BLOB (24 MiB as hex: no one statement carries it under 16M)
#     and a 9 MiB utf8mb4 text of multi-byte characters, and in a second
#     database a 40 MiB BLOB (over the limit itself), back up with a warning
#     naming the tables and the packet limit;
#  2. the first restores (same SHA-256 of the values, same CHECKSUM TABLE);
#     the 40 MiB row cannot load into a 16M server by any SQL statement
#     (CONCAT() is bound by the limit as well): that database is named with
#     the reason and left as it was, the database sorted after it is
#     restored, exit 3;
#  3. a big row in a table without a primary key is named in a warning (it
#     is written in one statement).
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set (tests/infra/mariadb-up.sh)"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"
e2e_setup

URL=${COFFER_TEST_MARIADB%/}
eval "$(mariadb_vars "$URL")"
sql() { mariadb "${MDB_ARGS[@]}" --default-character-set=utf8mb4 "$@"; }
q() { sql -N -B -e "SET time_zone='+00:00'; $1"; }

P=cfbig_$$_$RANDOM
on_exit()
{
	local d
	for d in $(q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${P}%'" 2>/dev/null); do
		q "DROP DATABASE \`$d\`" 2>/dev/null
	done
	[ -n "${OLD_PACKET:-}" ] && q "SET GLOBAL max_allowed_packet = $OLD_PACKET" 2>/dev/null
	e2e_cleanup
}
trap on_exit EXIT
DB=${P}_a HUGE=${P}_b AFTER=${P}_c

R=$T/repo
init_repo "$R"
OLD_PACKET=$(q "SELECT @@GLOBAL.max_allowed_packet")
q "SET GLOBAL max_allowed_packet = 64 * 1024 * 1024" || skip "cannot SET GLOBAL max_allowed_packet"
# a new connection for each statement below: they see the new global value
q "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4; CREATE DATABASE \`$HUGE\`; CREATE DATABASE \`$AFTER\`"
q "CREATE TABLE \`$DB\`.big (id INT PRIMARY KEY, b LONGBLOB, t LONGTEXT, n INT) ENGINE=InnoDB"
q "CREATE TABLE \`$DB\`.nokey (b LONGBLOB) ENGINE=InnoDB"
q "INSERT INTO \`$DB\`.big VALUES (1, '', '', 7), (2, 'small', 'klein', 8), (3, '', '', 9)"
q "CREATE TABLE \`$HUGE\`.h (id INT PRIMARY KEY, b LONGBLOB, n INT) ENGINE=InnoDB"
q "INSERT INTO \`$HUGE\`.h VALUES (1, '', 1)"
# distinct data, one MiB at a time: 12 MiB (24 MiB as hex, over the 16M
# limit: one statement cannot carry it) and 40 MiB (over the limit itself)
for i in $(seq 1 40); do
	[ "$i" -le 12 ] && { q "UPDATE \`$DB\`.big SET b = CONCAT(b, REPEAT(UNHEX(SHA2($i, 256)), 32768)) WHERE id = 1" ||
		fail "making the BLOB"; }
	q "UPDATE \`$HUGE\`.h SET b = CONCAT(b, REPEAT(UNHEX(SHA2($i, 256)), 32768)) WHERE id = 1" || fail "making the BLOB"
done
q "UPDATE \`$DB\`.big SET t = REPEAT('ü😀a€ ', 800000), b = REPEAT(UNHEX('00FF'), 3000000) WHERE id = 3" || fail "making the text"
q "INSERT INTO \`$DB\`.nokey VALUES (REPEAT(UNHEX('AB'), 5000000))"
q "CREATE TABLE \`$AFTER\`.t (id INT PRIMARY KEY); INSERT INTO \`$AFTER\`.t VALUES (1), (2)"
sums() { q "SELECT id, LENGTH(b), SHA2(b, 256), CHAR_LENGTH(t), SHA2(t, 256), n FROM \`$1\`.big ORDER BY id; CHECKSUM TABLE \`$1\`.big; SELECT SHA2(b, 256) FROM \`$1\`.nokey" | sed "s/$1//"; }
sums "$DB" > "$T/orig"
check_eq 12582912 "$(q "SELECT LENGTH(b) FROM \`$DB\`.big WHERE id = 1")" "the 12 MiB BLOB's size"
check_eq 41943040 "$(q "SELECT LENGTH(b) FROM \`$HUGE\`.h WHERE id = 1")" "the 40 MiB BLOB's size"

q "SET GLOBAL max_allowed_packet = 16 * 1024 * 1024"
cof -r "$R" backup --mariadb "$URL/$DB,$HUGE,$AFTER"
assert_contains "$T/err" "$DB.big: a row of" "backup warns of the big row, naming the table"
assert_contains "$T/err" "$HUGE.h: a row of 41943" "backup warns of the 40 MiB row"
assert_contains "$T/err" "max_allowed_packet (16777216)" "backup names the server's packet limit"
assert_contains "$T/err" "nokey: 1 row of" "a big row without a primary key is named"
q "DROP DATABASE \`$DB\`; DROP DATABASE \`$AFTER\`; UPDATE \`$HUGE\`.h SET n = 99"
expect_exit 3 "$COFFER" -r "$R" restore latest --mariadb "$URL"
assert_contains "$T/err" "$HUGE" "the database that cannot load is named"
assert_contains "$T/err" "max_allowed_packet" "...with the reason"
sums "$DB" > "$T/restored"
cmp -s "$T/orig" "$T/restored" || soft_fail "restored big rows differ: $(diff "$T/orig" "$T/restored")"
check_eq "1 2" "$(q "SELECT GROUP_CONCAT(id ORDER BY id SEPARATOR ' ') FROM \`$AFTER\`.t")" \
	"the database after the failing one is restored"
check_eq "99 41943040" "$(q "SELECT CONCAT(n, ' ', LENGTH(b)) FROM \`$HUGE\`.h")" "the database that failed is left as it was"
check_eq "" "$(q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${P}%coffer%'")" \
	"no temporary database left"

e2e_done
