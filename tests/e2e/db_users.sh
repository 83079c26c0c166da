#!/bin/bash
# db_users.sh - backup --mariadb-users (issue 25 item 9) against a real
# MariaDB 10.11 ($COFFER_TEST_MARIADB; skipped when unset).  What a user
# checks after restoring onto a server that lost the accounts:
#  1. a database whose SQL SECURITY DEFINER view, function and procedure
#     belong to an account (with a global privilege, database grants, a role
#     holding a table grant, a default role) is backed up with
#     --mariadb-users; the account, the role and the database are dropped,
#     another account that holds grants on the view and the routines gets a
#     new password;
#  2. the restore makes the account and the role again: SHOW CREATE USER and
#     SHOW GRANTS of both are as before, the account logs in with its old
#     password, and the other account (its new password still working, the
#     old one refused) reads the view and calls the routines, which run as
#     the definer;
#  3. restore --mariadb-users-replace sets the existing account's password
#     back to the snapshot's;
#  4. --rename: the grants on the dumped database are given on the new one,
#     whose view works for the other account;
#  5. a backup without --mariadb-users holds no account statements, and a
#     restore of it makes no account.
. "$(dirname "$0")/lib.sh"
[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set (tests/infra/mariadb-up.sh)"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"
e2e_setup

URL=${COFFER_TEST_MARIADB%/}
eval "$(mariadb_vars "$URL")"
sql() { mariadb "${MDB_ARGS[@]}" --default-character-set=utf8mb4 "$@"; }
q() { sql -N -B -e "$1"; }
# as another account: as USER PASSWORD SQL
as() { mariadb --no-defaults "${MDB_CONN[@]}" -u "$1" "-p$2" -N -B -e "$3"; }

P=cfu$$_$RANDOM
DB=${P}_d NEW=${P}_n OWN=${P}_own RD=${P}_rd ROLE=${P}_role
on_exit()
{
	local d
	for d in $(q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '${P}%'" 2>/dev/null); do
		q "DROP DATABASE \`$d\`" 2>/dev/null
	done
	q "DROP USER IF EXISTS '$OWN'@'%', '$RD'@'%'; DROP ROLE IF EXISTS '$ROLE'" 2>/dev/null
	e2e_cleanup
}
trap on_exit EXIT

R=$T/repo
init_repo "$R"

sql <<EOF || fail "creating the test schema and accounts"
CREATE DATABASE \`$DB\`;
USE \`$DB\`;
CREATE TABLE secret (id INT PRIMARY KEY, v VARCHAR(20));
INSERT INTO secret VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE ROLE '$ROLE';
GRANT SELECT ON \`$DB\`.secret TO '$ROLE';
CREATE USER '$OWN'@'%' IDENTIFIED BY 'own-pw' WITH MAX_QUERIES_PER_HOUR 1000;
GRANT SELECT, EXECUTE ON \`$DB\`.* TO '$OWN'@'%';
GRANT PROCESS ON *.* TO '$OWN'@'%';
GRANT '$ROLE' TO '$OWN'@'%';
SET DEFAULT ROLE '$ROLE' FOR '$OWN'@'%';
CREATE DEFINER='$OWN'@'%' SQL SECURITY DEFINER VIEW v AS SELECT id, v FROM secret;
CREATE DEFINER='$OWN'@'%' FUNCTION cnt() RETURNS INT SQL SECURITY DEFINER READS SQL DATA
  RETURN (SELECT COUNT(*) FROM secret);
DELIMITER ;;
CREATE DEFINER='$OWN'@'%' PROCEDURE total() SQL SECURITY DEFINER READS SQL DATA
BEGIN
  SELECT SUM(id) FROM secret;
END;;
DELIMITER ;
CREATE USER '$RD'@'%' IDENTIFIED BY 'rd-old';
GRANT SELECT ON \`$DB\`.v TO '$RD'@'%';
GRANT EXECUTE ON FUNCTION \`$DB\`.cnt TO '$RD'@'%';
GRANT EXECUTE ON PROCEDURE \`$DB\`.total TO '$RD'@'%';
EOF

# what the reader sees before: the baseline the restore must give back
assert_eq "$(as "$RD" rd-old "SELECT GROUP_CONCAT(v ORDER BY id) FROM \`$DB\`.v; SELECT \`$DB\`.cnt(); CALL \`$DB\`.total()")" \
	"$(printf 'one,two,three\n3\n6')" "the reader uses the view and the routines before the backup"
grants() { q "SHOW CREATE USER '$OWN'@'%'; SHOW GRANTS FOR '$OWN'@'%'; SHOW GRANTS FOR '$ROLE'" | sort; }
before=$(grants)
rd_before=$(q "SHOW GRANTS FOR '$RD'@'%'" | grep -v IDENTIFIED | sort)

cof -r "$R" backup --mariadb "$URL/$DB" --mariadb-users --tag users
cof -r "$R" backup --mariadb "$URL/$DB" --tag plain

# 5. no accounts without the option
cof -r "$R" dump latest --tag plain "/mariadb/$DB.sql"
cp "$T/out" "$T/plain.sql"
grep -q "CREATE USER\|GRANT " "$T/plain.sql" && soft_fail "a dump without --mariadb-users holds account statements"
cof -r "$R" dump latest --tag users "/mariadb/$DB.sql"
cp "$T/out" "$T/users.sql"
grep -q "CREATE USER IF NOT EXISTS \`$OWN\`@\`%\`" "$T/users.sql" ||
	soft_fail "the --mariadb-users dump does not make the definer's account"

# 1. the server loses the account, the role and the database
q "DROP USER '$OWN'@'%'; DROP ROLE '$ROLE'; DROP DATABASE \`$DB\`;
   ALTER USER '$RD'@'%' IDENTIFIED BY 'rd-new'" || fail "dropping the account"
as "$RD" rd-new "SELECT 1" > /dev/null || fail "the reader's new password does not work"
check_eq 0 "$(q "SELECT COUNT(*) FROM mysql.user WHERE User IN ('$OWN', '$ROLE')")" "the account and role are gone"

# a restore of the plain snapshot leaves the definer missing: the view fails
cof -r "$R" restore latest --tag plain --mariadb "$URL"
check_eq 0 "$(q "SELECT COUNT(*) FROM mysql.user WHERE User IN ('$OWN', '$ROLE')")" \
	"a dump without accounts made none"
as "$RD" rd-new "SELECT COUNT(*) FROM \`$DB\`.v" > /dev/null 2> "$T/noacct.err" &&
	soft_fail "the view worked with its definer missing (the test would prove nothing)"
assert_contains "$T/noacct.err" "denied" "without the definer's account the view is refused"

# 2. the restore with accounts
cof -r "$R" restore latest --tag users --mariadb "$URL"
check_eq "$before" "$(grants)" "SHOW CREATE USER and SHOW GRANTS of the account and its role are as before"
check_eq "$rd_before" "$(q "SHOW GRANTS FOR '$RD'@'%'" | grep -v IDENTIFIED | sort)" "the reader's grants are as before"
check_eq "$OWN@%" "$(as "$OWN" own-pw "SELECT CURRENT_USER()")" "the made account logs in with its old password"
check_eq "$(printf 'one,two,three\n3\n6')" \
	"$(as "$RD" rd-new "SELECT GROUP_CONCAT(v ORDER BY id) FROM \`$DB\`.v; SELECT \`$DB\`.cnt(); CALL \`$DB\`.total()")" \
	"the reader uses the view and the routines (run as the definer)"
as "$RD" rd-old "SELECT 1" > /dev/null 2>&1 &&
	soft_fail "the existing account's password was changed back by the restore"

# 3. --mariadb-users-replace: the snapshot's password
cof -r "$R" restore latest --tag users --mariadb "$URL" --mariadb-users-replace
check_eq 1 "$(as "$RD" rd-old "SELECT 1" 2>&1)" "--mariadb-users-replace gives the existing account the snapshot's password"
as "$RD" rd-new "SELECT 1" > /dev/null 2>&1 && soft_fail "the new password still works after --mariadb-users-replace"
check_eq "$before" "$(grants)" "the account and role after --mariadb-users-replace"

# 4. --rename: grants on the new name
cof -r "$R" restore latest --tag users --mariadb "$URL" --rename "$DB=$NEW"
q "SHOW GRANTS FOR '$OWN'@'%'" | grep -q "ON \`$NEW\`\.\* TO" ||
	soft_fail "the renamed restore did not grant the account on $NEW"
check_eq "$(printf 'one,two,three\n3')" \
	"$(as "$RD" rd-old "SELECT GROUP_CONCAT(v ORDER BY id) FROM \`$NEW\`.v; SELECT \`$NEW\`.cnt()")" "the reader uses the renamed database's view and function"

e2e_done
