#!/usr/bin/env bash
# tests/run.sh [BUILD_DIR] [-- CMAKE_ARGS...] - build coffer and run the whole test suite.
#
# Starts the real servers the tests talk to on loopback (MariaDB, and a strict
# S3: OpenStack Swift with s3api), installing their Debian packages when
# missing (needs root for that), runs every CTest test (cmocka unit tests and
# end-to-end tests of the binary), and stops the servers again.
# COFFER_NO_SERVERS=1 skips the servers (their tests then report "skipped").
# The Docker image test (e2e.image: buildah + podman, minutes when cold) runs
# too, as in CI; COFFER_TEST_IMAGE=0 leaves it out.
# Run as root, or as a user with sudo: it then runs itself again through sudo
# (installing the servers and the root-only tests need root).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo --preserve-env=COFFER_NO_SERVERS,COFFER_TEST_IMAGE,CTEST_ARGS,ASAN_OPTIONS \
			bash "$0" "$@"
	fi
	echo "tests/run.sh: the suite needs root (servers, ownership, device nodes), and sudo is not installed: run it as root" >&2
	exit 1
fi
export COFFER_TEST_IMAGE=${COFFER_TEST_IMAGE-1}
[ "$COFFER_TEST_IMAGE" = 1 ] || unset COFFER_TEST_IMAGE
# what the e2e tests use beyond the build dependencies (scripts/setup-debian.sh),
# installed once when missing: podman/runc
# (e2e.agent_docker), buildah/debootstrap (e2e.image), python3-yaml (the YAML examples)
need=()
for p in podman runc buildah debootstrap python3-yaml; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "tests/run.sh: installing ${need[*]} (apt-get)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
		--no-install-recommends "${need[@]}" >/dev/null
fi
build=${1:-$here/build}
shift || true
[ "${1:-}" = "--" ] && shift
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"

state=$(mktemp -d /tmp/coffer-tests.XXXXXX)
. "$here/tests/infra/servers.sh"
cleanup() {
	servers_down "$state"
	rm -rf "$state"
}
trap cleanup EXIT
servers_up "$state" coffer-test
cd "$build"
ctest --output-on-failure -j2 ${CTEST_ARGS:-}
