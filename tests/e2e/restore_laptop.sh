#!/bin/bash
# restore_laptop.sh - the laptop round trip of issue 20, both ways: a
# "production" (two volumes and a MariaDB database) is backed up; `restore
# --all` puts it onto a "laptop" (--path-map for each volume, the database
# loaded into the local server under another name with --rename); the laptop
# changes it and is backed up into a second ("dev") repository; that snapshot
# goes back onto production with `restore --all` (the maps the other way).
# Bytes (compare_trees) and rows (CHECKSUM TABLE and the rows) are equal at
# each step.  Needs COFFER_TEST_MARIADB (skipped without).
. "$(dirname "$0")/lib.sh"
e2e_setup

[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"
read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
sql() { mariadb --no-defaults -N -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
base=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' "$COFFER_TEST_MARIADB")
PROD=lp_prod_$$_$RANDOM
DEV=lp_dev_$$_$RANDOM
trap 'sql -e "DROP DATABASE IF EXISTS \`$PROD\`; DROP DATABASE IF EXISTS \`$DEV\`" 2>/dev/null; e2e_cleanup' EXIT
sql -e "CREATE DATABASE \`$PROD\`; CREATE TABLE \`$PROD\`.t (id INT PRIMARY KEY, v VARCHAR(20));
	INSERT INTO \`$PROD\`.t VALUES (1,'one'),(2,'two');" || fail "cannot create the production database"
sum() { sql -e "CHECKSUM TABLE \`$1\`.t" | awk '{print $2}'; }
rows() { sql -e "SELECT GROUP_CONCAT(CONCAT(id,' ',v) ORDER BY id) FROM \`$1\`.t"; }
export COFFER_DOCKER_HOST=none

# --- production, backed up
mkdir -p "$T/prod/uploads/img" "$T/prod/config"
randfile "$T/prod/uploads/img/a.bin" 200000
echo "listen 80" > "$T/prod/config/app.conf"
PR=$T/prod-repo
init_repo "$PR"
cof -r "$PR" backup "$T/prod/uploads" "$T/prod/config" --mariadb "$base/$PROD"

# --- pulled onto the laptop
mkdir -p "$T/laptop"
cof -r "$PR" restore latest --all --yes --path-map "$T/prod/uploads=$T/laptop/uploads" \
	--path-map "$T/prod/config=$T/laptop/config" --mariadb "$base/" --rename "$PROD=$DEV"
compare_trees "$T/prod/uploads" "$T/laptop/uploads"
compare_trees "$T/prod/config" "$T/laptop/config"
check_eq "$(sum "$PROD")" "$(sum "$DEV")" "the laptop's database equals production's"

# --- the developer works, backs up into a dev repository
echo "listen 8080" > "$T/laptop/config/app.conf"
randfile "$T/laptop/uploads/img/b.bin" 50000
rm "$T/laptop/uploads/img/a.bin"
sql -e "INSERT INTO \`$DEV\`.t VALUES (3,'three'); UPDATE \`$DEV\`.t SET v='uno' WHERE id=1;"
DR=$T/dev-repo
init_repo "$DR"
cof -r "$DR" backup "$T/laptop/uploads" "$T/laptop/config" --mariadb "$base/$DEV"
cp -a "$T/laptop" "$T/laptop-at-backup"

# --- and pushes it back onto production
cof -r "$DR" restore latest --all --yes --path-map "$T/laptop/uploads=$T/prod/uploads" \
	--path-map "$T/laptop/config=$T/prod/config" --mariadb "$base/" --rename "$DEV=$PROD"
compare_trees "$T/laptop-at-backup/uploads" "$T/prod/uploads"
compare_trees "$T/laptop-at-backup/config" "$T/prod/config"
[ ! -e "$T/prod/uploads/img/a.bin" ] || soft_fail "the file deleted on the laptop is still on production"
check_eq "$(sum "$DEV")" "$(sum "$PROD")" "production's database equals the laptop's"
check_eq "1 uno,2 two,3 three" "$(rows "$PROD")" "production's rows"

e2e_done
