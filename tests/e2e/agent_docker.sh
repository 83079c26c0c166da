#!/bin/bash
# agent_docker.sh - the agent stops the containers carrying the stop label
# through a real Docker Engine API (podman's compatible service on a unix
# socket) and starts them again: they are down while the backup reads, up
# afterwards; a container that was already stopped stays stopped, one without
# the label is never touched; they are started again when the backup fails
# and when SIGTERM interrupts the job (and the repository checks clean); an
# explicitly configured engine that cannot be reached fails the job before
# anything is read.  Skipped (77) when podman cannot run containers here.
. "$(dirname "$0")/lib.sh"
e2e_setup

command -v podman > /dev/null || skip "podman is not installed (apt-get install podman runc)"
command -v runc > /dev/null || skip "runc is not installed"
command -v curl > /dev/null || skip "curl is not installed"

# --- a private podman: own storage, own API socket ------------------------
podman_conf
P=(podman --root "$T/pod/root" --runroot "$T/pod/run" --storage-driver vfs)
# containers first (their conmon and mounts outlive a killed service), then the rest
pod_cleanup()
{
	"${P[@]}" rm -a -f -t 0 > /dev/null 2>&1
	grep -o " $T/[^ ]*" /proc/mounts 2> /dev/null | sort -r | xargs -r umount 2> /dev/null
	e2e_cleanup
}
trap pod_cleanup EXIT
SOCK=$T/podman.sock
# an image holding nothing but sleep and its libraries: no registry needed
sleeper_image localhost/coffer-test-sleeper:latest "${P[@]}" ||
	skip "podman cannot import an image here: $(tail -n 1 "$T/image.log")"
"${P[@]}" system service --time=0 "unix://$SOCK" > "$T/service.log" 2>&1 &
E2E_PIDS+=($!)
api() { curl -sf --unix-socket "$SOCK" "http://d/v1.41$1"; }
wait_for api /version > /dev/null || skip "podman's API service did not start: $(tail -n 2 "$T/service.log")"
run_app() { "${P[@]}" run -d --name "$1" "${@:2}" --network none localhost/coffer-test-sleeper /bin/sleep infinity; }
run_app app1 --label coffer.stop-during-backup=true > "$T/pod.log" 2>&1 ||
	skip "podman cannot run a container here: $(tail -n 2 "$T/pod.log")"
run_app app2 --label coffer.stop-during-backup=true > /dev/null 2>&1 || fail "run app2"
"${P[@]}" stop -t 0 app2 > /dev/null 2>&1 || fail "stop app2"
run_app app3 --label other=true > /dev/null 2>&1 || fail "run app3"
running() { api "/containers/$1/json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["State"]["Running"])'; }
states() { echo "$(running app1) $(running app2) $(running app3)"; }
assert_eq "True False True" "$(states)" "containers before the job"

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/vol"
echo data > "$T/backup/vol/file"
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST="unix://$SOCK"
      COFFER_STOP_TIMEOUT=2)
snapshots() { "$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# a "dump" that records the containers' states while the backup reads
DURING="during.txt=curl -sf --unix-socket $SOCK http://d/v1.41/containers/app1/json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"State\"][\"Running\"])'"

# --- a good job: app1 down during the backup, up afterwards ---------------
expect_exit 0 env -i "${AENV[@]}" COFFER_STDIN_COMMANDS="$DURING" "$COFFER" agent --once
assert_contains "$T/err" "containers_stopped=1" "log line"
cof -r "$R" restore latest --target "$T/r"
check_eq False "$(cat "$T/r/during.txt")" "app1 was running during the backup"
check_eq "True False True" "$(states)" "containers after the job"

# --- a failed backup still starts the containers -------------------------
expect_exit 1 env -i "${AENV[@]}" COFFER_STDIN_COMMANDS="x.sql=exit 1" "$COFFER" agent --once
assert_contains "$T/err" "stage=backup" "failure stage"
check_eq "True False True" "$(states)" "containers after a failed backup"
assert_eq 1 "$(snapshots)" "snapshots after the failed backup"

# --- SIGTERM mid-job: containers started again, repository clean -----------
env -i "${AENV[@]}" COFFER_STDIN_COMMANDS="slow.bin=for i in \$(seq 600); do head -c 100000 /dev/urandom; sleep 0.05; done" \
	"$COFFER" agent --once > "$T/bg.out" 2> "$T/bg.err" &
PID=$!
E2E_PIDS+=($PID)
app1_down() { [ "$(running app1)" = False ]; }
wait_for app1_down || fail "app1 was not stopped"
sleep 1
kill -TERM $PID
wait $PID
RC=$?
cat "$T/bg.err" >&2
check_eq 130 "$RC" "exit code after SIGTERM"
check_eq "True False True" "$(states)" "containers after SIGTERM"
assert_eq 1 "$(snapshots)" "snapshots after SIGTERM"
cof -r "$R" check

# --- an engine that cannot be reached fails the job before the backup ------
expect_exit 1 env -i "${AENV[@]}" COFFER_DOCKER_HOST="unix://$T/nonexistent.sock" "$COFFER" agent --once
assert_contains "$T/err" "stage=containers" "unreachable engine"
assert_contains "$T/err" "nonexistent.sock" "the socket is named"
assert_eq 1 "$(snapshots)" "snapshots after an unreachable engine"

e2e_done
