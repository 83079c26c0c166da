#!/usr/bin/env bash
# tests/run.sh [BUILD_DIR] [-- CMAKE_ARGS...] - build coffer and run the whole test suite.
#
# Starts the real servers the tests talk to on loopback (MariaDB, and a strict
# S3: OpenStack Swift with s3api), installing their Debian packages when
# missing (needs root for that), runs every CTest test (cmocka unit tests and
# end-to-end tests of the binary), and stops the servers again.
# COFFER_NO_SERVERS=1 skips the servers (their tests then report "skipped").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
shift || true
[ "${1:-}" = "--" ] && shift
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"

state=$(mktemp -d /tmp/coffer-tests.XXXXXX)
cleanup() {
	if [ -z "${COFFER_NO_SERVERS:-}" ]; then
		MDB_BASE=$state/mariadb sh "$here/tests/infra/mariadb-down.sh" >/dev/null 2>&1 || true
		bash "$here/tests/infra/swift-s3-down.sh" "$state/swift" >/dev/null 2>&1 || true
	fi
	rm -rf "$state"
}
trap cleanup EXIT

if [ -z "${COFFER_NO_SERVERS:-}" ]; then
	MDB_BASE=$state/mariadb sh "$here/tests/infra/mariadb-up.sh" >"$state/mariadb.out"
	export COFFER_TEST_MARIADB="mariadb://coffer:coffer-test@127.0.0.1:${MDB_PORT:-13306}/"
	endpoint=$(bash "$here/tests/infra/swift-s3-up.sh" "$state/swift")
	export COFFER_TEST_S3="$endpoint/coffer-test-$$"
	# the same store over https (swift-s3-up.sh's second proxy)
	export COFFER_TEST_S3_TLS="https://127.0.0.1:$((${SWIFT_PORT:-16080} + 2))/coffer-test-$$"
	export COFFER_TEST_S3_CACERT="$state/swift/tls.crt"
	export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
fi
cd "$build"
ctest --output-on-failure -j2 ${CTEST_ARGS:-}
