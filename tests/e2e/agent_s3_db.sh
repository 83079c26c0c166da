#!/bin/bash
# agent_s3_db.sh - `coffer agent --once` the way the sidecar runs in
# production: an S3 repository (the strict Swift server), a MariaDB database
# and a volume, configured by environment only, land in ONE snapshot; the
# volume restores bit-exact and the database loads back under a new name with
# the same checksum.  Skipped (77) without COFFER_TEST_S3 and COFFER_TEST_MARIADB.
. "$(dirname "$0")/lib.sh"
e2e_setup
[ -n "${COFFER_TEST_S3:-}" ] || skip "COFFER_TEST_S3 is not set (see tests/run.sh)"
[ -n "${COFFER_TEST_MARIADB:-}" ] || skip "COFFER_TEST_MARIADB is not set (see tests/run.sh)"
command -v mariadb > /dev/null || skip "the mariadb client is not installed"

# the server's address from the URL, for the stock client
read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
sql() { mariadb --no-defaults -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
DB=agent_s3_$$_$RANDOM
sql -e "CREATE DATABASE \`$DB\`; USE \`$DB\`;
	CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40), b BLOB);
	INSERT INTO t VALUES (1, 'héllo', X'00ff10'), (2, NULL, NULL), (3, 'three', REPEAT('x', 5000));" ||
	fail "cannot create the test database"
trap 'sql -e "DROP DATABASE IF EXISTS \`$DB\`; DROP DATABASE IF EXISTS \`${DB}_r\`" 2>/dev/null; e2e_cleanup' EXIT
# mariadb://user:pw@host:port, without any database list or query
base=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' \
	"$COFFER_TEST_MARIADB")

mkdir -p "$T/backup/app"
randfile "$T/backup/app/upload.bin" 3000000
echo settings > "$T/backup/app/settings.ini"
R=s3:${COFFER_TEST_S3#s3:}/agent-$RANDOM$RANDOM
init_repo "$R"

expect_exit 0 env -i PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE" \
	AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
	AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
	COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none \
	COFFER_MARIADB="$base/$DB" "$COFFER" agent --once
cof -r "$R" snapshots --json
check_eq 1 "$(json_field "$T/out" 'len(j)')" "one snapshot"
cof -r "$R" ls latest
assert_contains "$T/out" "/mariadb/$DB.sql" "the database dump is in the snapshot"
assert_contains "$T/out" "$T/backup/app/upload.bin" "the volume is in the same snapshot"
cof -r "$R" restore latest --target "$T/r" --include "$T/backup/app"
compare_trees "$T/backup/app" "$T/r$T/backup/app"
cof -r "$R" restore latest --mariadb "$base/" --rename "$DB=${DB}_r"
a=$(sql -N -e "CHECKSUM TABLE \`$DB\`.t EXTENDED" | cut -f2)
b=$(sql -N -e "CHECKSUM TABLE \`${DB}_r\`.t EXTENDED" | cut -f2)
[ -n "$a" ] && assert_eq "$a" "$b" "checksum of the table loaded back"
cof -r "$R" check --read-data

# --- the same agent against the https endpoint (swift-s3-up.sh's proxy, a
# self-signed certificate): refused without COFFER_CACERT, with a hint;
# with it (and the other S3 keys) the job succeeds ---
if [ -n "${COFFER_TEST_S3_TLS:-}" ] && [ -n "${COFFER_TEST_S3_CACERT:-}" ]; then
	tls_ep=$(printf '%s' "$COFFER_TEST_S3_TLS" | sed -E 's#^(https://[^/]+)/.*#\1#')
	RT=s3:$tls_ep/${R#s3:http*://*/}
	agent_https() {
		env -i PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$RT" COFFER_PASSWORD_FILE="$PWFILE" \
			AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
			AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
			COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none \
			"$@" "$COFFER" agent --once
	}
	agent_https > "$T/out" 2> "$T/err"
	rc=$?
	[ "$rc" != 0 ] || fail "the agent accepted an unknown certificate"
	assert_contains "$T/err" "COFFER_CACERT" "the refusal says how to trust a private CA"
	randfile "$T/backup/app/after.bin" 2000000
	expect_exit 0 agent_https COFFER_CACERT="$COFFER_TEST_S3_CACERT" COFFER_S3_CONNECTIONS=2 \
		COFFER_S3_SIGN_PAYLOAD=1
	cof -r "$R" snapshots --json
	check_eq 2 "$(json_field "$T/out" 'len(j)')" "snapshots after the https job (read over http)"
	rm -rf "$T/r"
	cof -r "$R" restore latest --target "$T/r" --include "$T/backup/app"
	compare_trees "$T/backup/app" "$T/r$T/backup/app"
else
	note "COFFER_TEST_S3_TLS is not set: the agent over https is not tested"
fi
e2e_done
