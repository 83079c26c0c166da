#!/usr/bin/env bash
# tests/repeat.sh [-n RUNS] [-R REGEX] [BUILD_DIR] - hunt flaky tests.
#
# Runs the selected CTest tests (default: every e2e test but the image) RUNS
# times in a row (default 20) in an already built BUILD_DIR (default build/),
# with the same servers tests/run.sh starts, and prints per test how many runs
# passed, failed and skipped.  A test that fails once in twenty runs is a
# defect (DEVELOPERS.md): exit 1 when any run of any test failed.  Each failing
# run's output is kept in BUILD_DIR/repeat-logs/<test>.<run>.log.
#
#   bash tests/repeat.sh -n 20 build           # the figures in doc/reliability.md
#   bash tests/repeat.sh -n 50 -R 'e2e.incremental$' build
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=20
regex='^e2e\.'
exclude='^e2e\.image$'
while getopts n:R:E: o; do
	case $o in
	n) runs=$OPTARG ;;
	R) regex=$OPTARG ;;
	E) exclude=$OPTARG ;;
	*) echo "usage: $0 [-n RUNS] [-R REGEX] [-E REGEX] [BUILD_DIR]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
build=${1:-$here/build}
[ -x "$build/coffer" ] || { echo "repeat.sh: $build/coffer is not built (run tests/run.sh first)" >&2; exit 2; }
build=$(cd "$build" && pwd)

state=$(mktemp -d /tmp/coffer-repeat.XXXXXX)
. "$here/tests/infra/servers.sh"
cleanup() {
	servers_down "$state"
	rm -rf "$state"
}
trap cleanup EXIT
servers_up "$state" coffer-repeat

logs=$build/repeat-logs
rm -rf "$logs"
mkdir -p "$logs"
cd "$build"
mapfile -t tests < <(ctest -N -R "$regex" -E "$exclude" | sed -n 's/^ *Test *#[0-9]*: //p')
[ ${#tests[@]} -gt 0 ] || { echo "repeat.sh: no test matches $regex" >&2; exit 2; }
declare -A pass fail skip
start=$(date +%s)
for ((i = 1; i <= runs; i++)); do
	for t in "${tests[@]}"; do
		out=$state/out
		if ctest -R "^${t//./\\.}\$" --output-on-failure >"$out" 2>&1; then
			if grep -q 'Skipped\|Not Run' "$out"; then
				skip[$t]=$((${skip[$t]:-0} + 1))
			else
				pass[$t]=$((${pass[$t]:-0} + 1))
			fi
		else
			fail[$t]=$((${fail[$t]:-0} + 1))
			cp "$out" "$logs/$t.$i.log"
			echo "run $i: $t FAILED (log: $logs/$t.$i.log)" >&2
		fi
	done
	echo "run $i of $runs done ($(( $(date +%s) - start )) s)" >&2
done
bad=0
printf '%-28s %6s %6s %6s\n' test passed failed skipped
for t in "${tests[@]}"; do
	printf '%-28s %6d %6d %6d\n' "$t" "${pass[$t]:-0}" "${fail[$t]:-0}" "${skip[$t]:-0}"
	[ "${fail[$t]:-0}" = 0 ] || bad=1
done
echo "$runs runs of ${#tests[@]} tests in $(( $(date +%s) - start )) s"
exit $bad
