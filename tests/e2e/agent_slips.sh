#!/bin/bash
# agent_slips.sh - the agent survives what containers do to it (issue 24):
# - a hostname that is a container id (Docker's default) changes with every
#   recreated sidecar; the snapshots still carry one stable host, so
#   COFFER_KEEP_LAST=1 leaves one snapshot after two "containers" (it left two);
# - a state directory that does not persist (a Kubernetes CronJob's /tmp):
#   prune is due when no prune is recorded, so the repository stays at about
#   one copy of the data over three runs (it grew by a copy each run);
# - two jobs of one agent at once (`agent --once` beside the daemon): the
#   second waits COFFER_JOB_WAIT seconds, then exits 11 naming the first.
. "$(dirname "$0")/lib.sh"
e2e_setup
[ "$(id -u)" = 0 ] || skip "needs root (a UTS namespace to set the hostname)"
unshare -u true 2> /dev/null || skip "unshare -u does not work here"

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/app" "$T/state"
randfile "$T/backup/app/blob" 3000000
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_DOCKER_HOST=none COFFER_KEEP_LAST=1)
# run the agent once in a container-like UTS namespace whose hostname is $1
in_container() {
	local h=$1
	shift
	env -i "${AENV[@]}" "$@" unshare -u sh -c 'hostname "$0" && exec "$@"' "$h" "$COFFER" agent --once
}
hosts() { "$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(" ".join(s["hostname"] for s in json.load(sys.stdin)))'; }

# --- a container-id hostname: one stable host over recreated containers ----
expect_exit 0 in_container 0123456789ab COFFER_STATE_DIR="$T/state"
assert_contains "$T/err" "is a container id" "the warning about a container-id hostname"
echo changed > "$T/backup/app/new"
expect_exit 0 in_container ba9876543210 COFFER_STATE_DIR="$T/state"
check_eq "coffer-0123456789ab" "$(hosts)" "hosts of the snapshots after two recreated containers with KEEP_LAST=1"
# COFFER_HOST wins, and a plain hostname is used as it is
expect_exit 0 in_container ba9876543210 COFFER_STATE_DIR="$T/state" COFFER_HOST=shop
expect_exit 0 in_container web-backup COFFER_STATE_DIR="$T/state"
check_eq "coffer-0123456789ab shop web-backup" "$(hosts | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" \
	"hosts with COFFER_HOST and with a plain hostname"

# --- a state directory that does not persist: prune still runs ----------------
R2=$T/repo2
init_repo "$R2"
sizes=()
for i in 1 2 3; do
	randfile "$T/backup/app/blob" 3000000 # new content every run: the old is garbage once forgotten
	rm -rf "$T/tmpstate"
	expect_exit 0 env -i "${AENV[@]}" COFFER_REPOSITORY="$R2" COFFER_HOST=k8s COFFER_STATE_DIR="$T/tmpstate" \
		"$COFFER" agent --once
	sizes+=("$(du -sb "$R2/data" | cut -f1)")
done
note "data/ after each of 3 runs with a fresh state directory: ${sizes[*]} bytes"
# after a prune, data/ holds one copy of the 3 MB file (plus packing overhead);
# without a prune it holds one copy per run
assert_le "${sizes[2]}" 4500000 "data/ bytes after the third run (one copy of 3 MB kept)"

# --- one job at a time --------------------------------------------------------
env -i "${AENV[@]}" COFFER_HOST=lock COFFER_STATE_DIR="$T/state" COFFER_PRE_COMMAND="sleep 8" \
	"$COFFER" agent --once > "$T/first.out" 2>&1 &
first=$!
E2E_PIDS+=("$first")
# the lock file stays between jobs: wait until it names this job
wait_for grep -q "^pid $first," "$T/state/job.lock" || fail "the first job took no job lock"
expect_exit 11 env -i "${AENV[@]}" COFFER_HOST=lock COFFER_STATE_DIR="$T/state" COFFER_JOB_WAIT=1 \
	"$COFFER" agent --once
assert_contains "$T/err" "another job of this agent is running (pid $first" "the refusal names the other job"
wait "$first" || soft_fail "the first job failed: $(tail -n 3 "$T/first.out")"
# once it is done, the next job runs
expect_exit 0 env -i "${AENV[@]}" COFFER_HOST=lock COFFER_STATE_DIR="$T/state" COFFER_JOB_WAIT=1 \
	"$COFFER" agent --once
e2e_done
