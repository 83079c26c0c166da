# servers.sh - start and stop the servers the test suite talks to (sourced by
# tests/run.sh and tests/repeat.sh, not run).
#
#   servers_up STATE_DIR NAME   MariaDB (mariadb-up.sh) and Swift with s3api
#                               (swift-s3-up.sh, plain and https) on loopback,
#                               state under STATE_DIR; exports the variables
#                               the tests read: COFFER_TEST_MARIADB,
#                               COFFER_TEST_S3 (bucket NAME-PID),
#                               COFFER_TEST_S3_TLS, COFFER_TEST_S3_CACERT and
#                               the S3 credentials; PostgreSQL 15 (pg-up.sh)
#                               on PG_PORT (default 15432), exporting
#                               COFFER_TEST_POSTGRES
#   servers_down STATE_DIR      stop both (best effort)
# COFFER_NO_SERVERS=1 makes both no-ops (the server tests then skip).
infra=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

servers_up()
{
	[ -z "${COFFER_NO_SERVERS:-}" ] || return 0
	local state=$1 name=$2 endpoint
	MDB_BASE=$state/mariadb sh "$infra/mariadb-up.sh" >"$state/mariadb.out"
	export COFFER_TEST_MARIADB="mariadb://coffer:coffer-test@127.0.0.1:${MDB_PORT:-13306}/"
	endpoint=$(bash "$infra/swift-s3-up.sh" "$state/swift")
	export COFFER_TEST_S3="$endpoint/$name-$$"
	# the same store over https (swift-s3-up.sh's second proxy)
	export COFFER_TEST_S3_TLS="https://127.0.0.1:$((${SWIFT_PORT:-16080} + 2))/$name-$$"
	export COFFER_TEST_S3_CACERT="$state/swift/tls.crt"
	export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
	# the server runs as the postgres user (pg-up.sh), which must enter $state
	chmod o+x "$state"
	PG_BASE=$state/postgres sh "$infra/pg-up.sh" >"$state/postgres.out"
	export COFFER_TEST_POSTGRES="postgres://coffer:coffer-test@127.0.0.1:${PG_PORT:-15432}/"
}

servers_down()
{
	[ -z "${COFFER_NO_SERVERS:-}" ] || return 0
	MDB_BASE=$1/mariadb sh "$infra/mariadb-down.sh" >/dev/null 2>&1 || true
	bash "$infra/swift-s3-down.sh" "$1/swift" >/dev/null 2>&1 || true
	PG_BASE=$1/postgres sh "$infra/pg-down.sh" >/dev/null 2>&1 || true
}
