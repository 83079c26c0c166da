#!/bin/bash
# agent_docker_exec.sh - Docker as people deploy it (issue 22): the agent
# reaches a real Docker Engine API on tcp:// (podman's compatible service on
# loopback TCP, the way a docker-socket-proxy is reached), given as
# COFFER_DOCKER_HOST or as DOCKER_HOST, http:// too; it stops the containers
# labelled coffer.stop-during-backup and those carrying offen's
# docker-volume-backup.stop-during-backup with the same value (not another
# value) while the backup reads, and they run again after it; the
# coffer.exec-pre label (and offen's docker-volume-backup.archive-pre) runs
# its command inside its container before the backup, so the backup holds
# the dump it wrote to a shared volume, its output logged under the
# container's name; coffer.exec-post runs after the backup, in the container
# started again, also after a failed backup; a failing exec-pre fails the
# job (exit 1, stage exec-pre) naming the container, the command and its
# status, before anything is stopped, and no exec-post follows; SIGTERM
# while an exec-pre command runs ends the job (130) without waiting for it;
# a bad address is refused in one line; an engine on TCP that does not
# answer fails the job before anything is read.  Skipped (77) when podman cannot run
# containers here.
. "$(dirname "$0")/lib.sh"
e2e_setup

command -v podman > /dev/null || skip "podman is not installed (apt-get install podman runc)"
command -v runc > /dev/null || skip "runc is not installed"
command -v curl > /dev/null || skip "curl is not installed"

# --- a private podman: own storage, its API on loopback TCP ----------------
podman_conf
P=(podman --root "$T/pod/root" --runroot "$T/pod/run" --storage-driver vfs)
pod_cleanup()
{
	"${P[@]}" rm -a -f -t 0 > /dev/null 2>&1
	grep -o " $T/[^ ]*" /proc/mounts 2> /dev/null | sort -r | xargs -r umount 2> /dev/null
	e2e_cleanup
}
trap pod_cleanup EXIT
# an image holding sleep and a shell (dash) with their libraries: no registry needed
bin_image localhost/coffer-test-shell:latest "/bin/sleep /bin/sh" "${P[@]}" ||
	skip "podman cannot import an image here: $(tail -n 1 "$T/image.log")"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${P[@]}" system service --time=0 "tcp://127.0.0.1:$PORT" > "$T/service.log" 2>&1 &
E2E_PIDS+=($!)
ENGINE=http://127.0.0.1:$PORT
api() { curl -sf "$ENGINE/v1.41$1"; }
wait_for api /version > /dev/null || skip "podman's API service did not start: $(tail -n 2 "$T/service.log")"

run_app() { "${P[@]}" run -d --name "$1" "${@:2}" --network none localhost/coffer-test-shell /bin/sleep infinity; }
mkdir -p "$T/backup/dump" "$T/backup/offen" "$T/hostside"
run_app app1 --label coffer.stop-during-backup=true > "$T/pod.log" 2>&1 ||
	skip "podman cannot run a container here: $(tail -n 2 "$T/pod.log")"
run_app app2 --label docker-volume-backup.stop-during-backup=true > /dev/null 2>&1 || fail "run app2"
run_app app3 --label docker-volume-backup.stop-during-backup=other > /dev/null 2>&1 || fail "run app3"
# the database's container: its dump goes to a volume the backup reads; it is
# also stopped during the backup (exec-pre runs before, exec-post after)
run_app db -v "$T/backup/dump:/data" -v "$T/hostside:/host" --label coffer.stop-during-backup=true \
	--label coffer.exec-pre='echo hi > /data/dump.txt; echo dumped; echo careful >&2' \
	--label coffer.exec-post='echo post >> /host/post.txt' > /dev/null 2>&1 || fail "run db"
run_app offen -v "$T/backup/offen:/data" --label docker-volume-backup.archive-pre='echo offen > /data/o.txt' \
	> /dev/null 2>&1 || fail "run offen"
running() { api "/containers/$1/json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["State"]["Running"])'; }
states() { echo "$(running app1) $(running app2) $(running app3) $(running db) $(running offen)"; }
UP="True True True True True"
assert_eq "$UP" "$(states)" "containers before the job"

R=$T/repo
init_repo "$R"
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_STOP_TIMEOUT=2)
snapshots() { "$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# a "dump" that records the containers' states while the backup reads
DURING="during.txt=for c in app1 app2 app3 db offen; do curl -sf $ENGINE/v1.41/containers/\$c/json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"State\"][\"Running\"])'; done | tr '\n' ' '"

# --- COFFER_DOCKER_HOST=tcp://: stopped during, running after; exec-pre's dump in the backup
expect_exit 0 env -i "${AENV[@]}" COFFER_DOCKER_HOST="tcp://127.0.0.1:$PORT" COFFER_STDIN_COMMANDS="$DURING" \
	"$COFFER" agent --once
assert_contains "$T/err" "containers_stopped=3" "log line"
assert_contains "$T/err" "[db stdout] dumped" "exec-pre's stdout, under the container's name"
assert_contains "$T/err" "[db stderr] careful" "exec-pre's stderr, under the container's name"
cof -r "$R" restore latest --target "$T/r"
check_eq "False False True False True " "$(cat "$T/r/during.txt")" "app1, app2 (offen's label), db down during the backup; app3 (another value), offen up"
check_eq "hi" "$(cat "$T/r$T/backup/dump/dump.txt" 2> /dev/null)" "the backup holds exec-pre's dump"
check_eq "offen" "$(cat "$T/r$T/backup/offen/o.txt" 2> /dev/null)" "offen's archive-pre label ran"
check_eq "post" "$(cat "$T/hostside/post.txt" 2> /dev/null)" "exec-post ran after the backup"
check_eq "$UP" "$(states)" "containers after the job"

# --- DOCKER_HOST (no COFFER_DOCKER_HOST), as http://; a failed backup still runs exec-post
expect_exit 1 env -i "${AENV[@]}" DOCKER_HOST="http://127.0.0.1:$PORT/" COFFER_STDIN_COMMANDS="x.sql=exit 1" \
	"$COFFER" agent --once
assert_contains "$T/err" "stage=backup" "failure stage"
assert_contains "$T/err" "containers_stopped=3" "DOCKER_HOST is used"
check_eq "post
post" "$(cat "$T/hostside/post.txt")" "exec-post ran after the failed backup"
check_eq "$UP" "$(states)" "containers after a failed backup"
assert_eq 1 "$(snapshots)" "snapshots after the failed backup"

# --- a failing exec-pre fails the job before anything is stopped ----------
run_app bad --label coffer.exec-pre='echo trying; exit 3' > /dev/null 2>&1 || fail "run bad"
expect_exit 1 env -i "${AENV[@]}" COFFER_DOCKER_HOST="tcp://127.0.0.1:$PORT" "$COFFER" agent --once
assert_contains "$T/err" "stage=exec-pre" "failure stage"
assert_contains "$T/err" 'exec-pre in container bad: \"echo trying; exit 3\" exited with status 3' "the container, command and status are named"
assert_contains "$T/err" "[bad stdout] trying" "the failing command's output is logged"
assert_contains "$T/err" "containers_stopped=0" "nothing was stopped"
assert_eq 1 "$(snapshots)" "snapshots after a failed exec-pre"
check_eq "post
post" "$(cat "$T/hostside/post.txt")" "no exec-post after a failed exec-pre"
check_eq "$UP" "$(states)" "containers after a failed exec-pre"
"${P[@]}" rm -f -t 0 bad > /dev/null 2>&1 || fail "rm bad"

# --- SIGTERM while an exec-pre command runs: the job stops waiting (130) ---
mkdir -p "$T/slow"
run_app slow -v "$T/slow:/data" --label coffer.exec-pre='echo started > /data/started; sleep 60' > /dev/null 2>&1 ||
	fail "run slow"
env -i "${AENV[@]}" COFFER_DOCKER_HOST="tcp://127.0.0.1:$PORT" "$COFFER" agent --once > "$T/bg.out" 2> "$T/bg.err" &
PID=$!
E2E_PIDS+=($PID)
started() { [ -s "$T/slow/started" ]; }
wait_for started || fail "slow's exec-pre did not start"
kill -TERM $PID
wait $PID
RC=$?
cat "$T/bg.err" >&2
check_eq 130 "$RC" "exit code after SIGTERM during exec-pre"
assert_contains "$T/bg.err" "stage=exec-pre" "the stage"
assert_contains "$T/bg.err" "containers_stopped=0" "nothing was stopped"
check_eq "$UP" "$(states)" "containers after SIGTERM during exec-pre"
assert_eq 1 "$(snapshots)" "snapshots after SIGTERM during exec-pre"
"${P[@]}" rm -f -t 0 slow > /dev/null 2>&1 || fail "rm slow"

# --- bad addresses: one line naming what is wrong --------------------------
for v in "tcp://" "tcp://127.0.0.1:99999" "https://127.0.0.1:$PORT" "ssh://me@docker" "unix://relative.sock"; do
	expect_exit 1 env -i "${AENV[@]}" COFFER_DOCKER_HOST="$v" "$COFFER" agent --once
	assert_one_line_err "COFFER_DOCKER_HOST=$v"
	assert_contains "$T/err" "COFFER_DOCKER_HOST: \"$v\"" "the value is named"
done
expect_exit 1 env -i "${AENV[@]}" DOCKER_TLS_VERIFY=1 DOCKER_HOST="tcp://127.0.0.1:$PORT" "$COFFER" agent --once
assert_one_line_err "DOCKER_HOST with DOCKER_TLS_VERIFY"
assert_contains "$T/err" "TLS to the Docker engine" "TLS is named as unsupported"
# restore --all reads the same variables
expect_exit 1 env DOCKER_HOST="tcp://127.0.0.1:0" "$COFFER" -r "$R" restore latest --all --yes
assert_contains "$T/err" "port 0 is not 1-65535" "restore --all refuses a bad DOCKER_HOST"

# --- an engine on TCP that does not answer fails the job before the backup
DEAD=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_exit 1 env -i "${AENV[@]}" COFFER_DOCKER_HOST="tcp://127.0.0.1:$DEAD" "$COFFER" agent --once
assert_contains "$T/err" "stage=containers" "unreachable engine"
assert_contains "$T/err" "http://127.0.0.1:$DEAD" "the engine is named"
assert_eq 1 "$(snapshots)" "snapshots after an unreachable engine"

e2e_done
