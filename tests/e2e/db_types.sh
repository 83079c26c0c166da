#!/bin/bash
# db_types.sh - what mariadb-dump keeps, coffer keeps too (issue 25 items
# 2-4), against a real MariaDB 10.11 ($COFFER_TEST_MARIADB; skipped when
# unset).  What a user checks after backup + restore under a new name:
#  1. sequences keep their definition (SHOW CREATE SEQUENCE equal: START,
#     MINVALUE, MAXVALUE, INCREMENT, CACHE/NOCACHE, CYCLE) and their position
#     (the next NEXTVAL equal, also after a CYCLE wrapped around; a cached
#     one goes on after its cache, as after a server restart);
#  2. a system-versioned table (implicit ROW_START/ROW_END) and one with
#     named period columns keep their whole history: the rows FOR
#     SYSTEM_TIME ALL with their row start and end times are equal, and an
#     AS OF query in the past gives the same answer;
#  3. FLOAT values come back exactly (1234567, 16777216, 0.1, 3.4e38, the
#     smallest normal, -0.0 as 0): compared as DOUBLE (every digit of the FLOAT), and the
#     CHECKSUM TABLE is equal.
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set (tests/infra/mariadb-up.sh)"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"
e2e_setup

URL=${COFFER_TEST_MARIADB%/}
eval "$(mariadb_vars "$URL")"
sql() { mariadb "${MDB_ARGS[@]}" --default-character-set=utf8mb4 "$@"; }
q() { sql -N -B -e "SET time_zone='+00:00'; $1"; }

P=cftyp_$$_$RANDOM
DB=${P}_t NEW=${P}_r
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
CREATE SEQUENCE s_opts START WITH 100 INCREMENT BY 5 MINVALUE 10 MAXVALUE 100000 CYCLE NOCACHE;
CREATE SEQUENCE s_cache START WITH 7 INCREMENT BY -1 MINVALUE -50 MAXVALUE 7 CACHE 20;
CREATE SEQUENCE s_wrap START WITH 1 MAXVALUE 3 CYCLE NOCACHE;
DO NEXTVAL(s_opts), NEXTVAL(s_opts), NEXTVAL(s_cache);
DO NEXTVAL(s_wrap), NEXTVAL(s_wrap), NEXTVAL(s_wrap), NEXTVAL(s_wrap), NEXTVAL(s_wrap);
CREATE TABLE hist (id INT PRIMARY KEY, v VARCHAR(20)) WITH SYSTEM VERSIONING;
CREATE TABLE hist_named (id INT PRIMARY KEY, v INT,
  vs TIMESTAMP(6) GENERATED ALWAYS AS ROW START, ve TIMESTAMP(6) GENERATED ALWAYS AS ROW END,
  PERIOD FOR SYSTEM_TIME (vs, ve)) WITH SYSTEM VERSIONING;
CREATE TABLE floats (id INT PRIMARY KEY, f FLOAT, fu FLOAT UNSIGNED, f2 FLOAT(7,2), d DOUBLE);
INSERT INTO floats VALUES (1, 1234567, 1234567, 12345.67, 0.1), (2, 16777216, 16777216, -1.5, 1e308),
  (3, 0.1, 0.1, 0.01, -2.5e-300), (4, 3.4e38, 3.4e38, 99999.99, 0),
  (5, -1.17549435e-38, 1.17549435e-38, NULL, NULL), (6, 16777217, 7.1, 1, 1), (7, NULL, NULL, NULL, NULL),
  (8, 1.0000001, 123456.789, 0, 0);
EOF
# history: four versions of row 1, two of row 2, a deleted row 3; a pause
# between them so that the times differ
for step in "INSERT INTO hist VALUES (1, 'a'), (2, 'x'), (3, 'gone'); INSERT INTO hist_named (id, v) VALUES (1, 10), (2, 20)" \
	"UPDATE hist SET v = 'b' WHERE id = 1; UPDATE hist_named SET v = 11 WHERE id = 1" \
	"UPDATE hist SET v = 'c' WHERE id = 1; DELETE FROM hist WHERE id = 3; DELETE FROM hist_named WHERE id = 2" \
	"UPDATE hist SET v = 'd' WHERE id = 1; UPDATE hist SET v = 'y' WHERE id = 2"; do
	q "USE \`$DB\`; $step" || fail "history step: $step"
	sleep 0.05
done
ASOF=$(q "SELECT ROW_END FROM \`$DB\`.hist FOR SYSTEM_TIME ALL WHERE id = 1 AND v = 'b'")

show() # DB: everything compared
{
	local s
	for s in s_opts s_cache s_wrap; do
		q "SHOW CREATE SEQUENCE \`$1\`.\`$s\`" | cut -f2
	done
	q "SELECT id, v, ROW_START, ROW_END FROM \`$1\`.hist FOR SYSTEM_TIME ALL ORDER BY id, ROW_START"
	q "SELECT id, v, vs, ve FROM \`$1\`.hist_named FOR SYSTEM_TIME ALL ORDER BY id, vs"
	q "SELECT id, v FROM \`$1\`.hist FOR SYSTEM_TIME AS OF TIMESTAMP '$ASOF' ORDER BY id"
	q "SELECT id, f+0e0, fu+0e0, f2, d FROM \`$1\`.floats ORDER BY id"
	q "CHECKSUM TABLE \`$1\`.floats" | cut -f2
	# positions last: NEXTVAL moves them (s_cache is checked apart)
	for s in s_opts s_wrap; do
		q "SELECT NEXTVAL(\`$1\`.\`$s\`), NEXTVAL(\`$1\`.\`$s\`), NEXTVAL(\`$1\`.\`$s\`)"
	done
}

cached_next=$(q "SELECT next_not_cached_value FROM \`$DB\`.s_cache")
cof -r "$R" backup --mariadb "$URL/$DB"
cof -r "$R" restore latest --mariadb "$URL" --rename "$DB=$NEW"
show "$NEW" > "$T/restored"
show "$DB" > "$T/orig"
check_eq 4 "$(q "SELECT COUNT(*) FROM \`$NEW\`.hist FOR SYSTEM_TIME ALL WHERE id = 1")" "versions of row 1 restored"
check_eq 1234567 "$(q "SELECT CAST(f AS DOUBLE) FROM \`$NEW\`.floats WHERE id = 1")" "FLOAT 1234567"
check_eq 16777216 "$(q "SELECT CAST(f AS DOUBLE) FROM \`$NEW\`.floats WHERE id = 2")" "FLOAT 16777216"
# a cached sequence goes on after its cache, as after a server restart
check_eq "$cached_next" "$(q "SELECT NEXTVAL(\`$NEW\`.s_cache)")" "the cached sequence's next value"
grep -q "nocache cycle" "$T/restored" || soft_fail "NOCACHE CYCLE lost: $(head -1 "$T/restored")"
cmp -s "$T/orig" "$T/restored" || soft_fail "restored differs: $(diff "$T/orig" "$T/restored" | head -30)"

e2e_done
