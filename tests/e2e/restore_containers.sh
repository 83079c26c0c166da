#!/bin/bash
# restore_containers.sh - `restore --all` stops the containers that would
# see their files change underneath them and starts them again (issue 20):
# through a real Docker Engine API (podman's compatible service on a unix
# socket), the running containers labelled coffer.stop-during-backup and
# those bind-mounting a restored volume are down while it writes (seen from
# the MariaDB load, which a held global read lock keeps waiting: a fixed
# point in the middle of the restore, no timing), up afterwards; a labelled
# container that was already down stays down; one that neither carries the
# label nor mounts a restored volume is never touched; after a restore whose
# database part fails they run again too, and after SIGTERM in the middle;
# --no-stop leaves them alone; an explicitly configured engine that cannot be
# reached refuses the restore before anything is written.  Skipped (77) when
# podman cannot run containers here; the during-the-restore checks need
# COFFER_TEST_MARIADB.
. "$(dirname "$0")/lib.sh"
e2e_setup

command -v podman > /dev/null || skip "podman is not installed (apt-get install podman runc)"
command -v runc > /dev/null || skip "runc is not installed"
command -v curl > /dev/null || skip "curl is not installed"

# --- a private podman: own storage, own API socket ------------------------
podman_conf
P=(podman --root "$T/pod/root" --runroot "$T/pod/run" --storage-driver vfs)
LOCKPID=
pod_cleanup()
{
	[ -z "$LOCKPID" ] || kill "$LOCKPID" 2> /dev/null
	[ -z "${DB:-}" ] || sql -e "DROP DATABASE IF EXISTS \`$DB\`" 2> /dev/null
	"${P[@]}" rm -a -f -t 0 > /dev/null 2>&1
	grep -o " $T/[^ ]*" /proc/mounts 2> /dev/null | sort -r | xargs -r umount 2> /dev/null
	e2e_cleanup
}
trap pod_cleanup EXIT
SOCK=$T/podman.sock
sleeper_image localhost/coffer-test-sleeper:latest "${P[@]}" ||
	skip "podman cannot import an image here: $(tail -n 1 "$T/image.log")"
"${P[@]}" system service --time=0 "unix://$SOCK" > "$T/service.log" 2>&1 &
E2E_PIDS+=($!)
api() { curl -sf --unix-socket "$SOCK" "http://d/v1.41$1"; }
wait_for api /version > /dev/null || skip "podman's API service did not start: $(tail -n 2 "$T/service.log")"

# the volumes restored, and one that is not
R=$T/repo
init_repo "$R"
mkdir -p "$T/vol/a" "$T/vol/b" "$T/other"
echo one > "$T/vol/a/one"
echo two > "$T/vol/b/two"
echo other > "$T/other/file"

run_app() { "${P[@]}" run -d --name "$1" "${@:2}" --network none localhost/coffer-test-sleeper /bin/sleep infinity; }
# labelled; mounts volume a (by bind mount); mounts something else; labelled but down
run_app labelled --label coffer.stop-during-backup=true > "$T/pod.log" 2>&1 ||
	skip "podman cannot run a container here: $(tail -n 2 "$T/pod.log")"
run_app mounter -v "$T/vol/a:/data" > /dev/null 2>&1 || fail "run mounter"
run_app bystander -v "$T/other:/data" > /dev/null 2>&1 || fail "run bystander"
run_app sleeping --label coffer.stop-during-backup=true > /dev/null 2>&1 || fail "run sleeping"
"${P[@]}" stop -t 0 sleeping > /dev/null 2>&1 || fail "stop sleeping"
running() { api "/containers/$1/json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["State"]["Running"])'; }
states() { echo "$(running labelled) $(running mounter) $(running bystander) $(running sleeping)"; }
UP="True True True False"
assert_eq "$UP" "$(states)" "containers before the restore"

export COFFER_DOCKER_HOST="unix://$SOCK" COFFER_STOP_TIMEOUT=2
DBARGS=()
RARGS=()
MARIA=
if [ -n "${COFFER_TEST_MARIADB:-}" ] && command -v mariadb > /dev/null; then
	MARIA=1
	read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
	sql() { mariadb --no-defaults -N -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
	DB=rcont_$$_$RANDOM
	sql -e "CREATE DATABASE \`$DB\`; CREATE TABLE \`$DB\`.t (id INT PRIMARY KEY); INSERT INTO \`$DB\`.t VALUES (1),(2);" ||
		fail "cannot create the test database"
	base=$("$PY" -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(f"{p.scheme}://{p.netloc}")' \
		"$COFFER_TEST_MARIADB")
	DBARGS=(--mariadb "$base/$DB")
	RARGS=(--mariadb "$base/")
else
	note "COFFER_TEST_MARIADB is not set: the containers are checked before and after only"
fi
cof -r "$R" backup "$T/vol/a" "$T/vol/b" "${DBARGS[@]}"
echo changed > "$T/vol/a/one"

# --- the plan names the containers; a dry run stops none -------------------
cof -r "$R" restore latest --all --dry-run "${RARGS[@]}"
assert_contains "$T/out" "containers stopped while restoring and started again afterwards: " "the plan's container line"
for n in labelled mounter; do
	grep -q "containers stopped while.*$n" "$T/out" || soft_fail "the plan does not name $n"
done
for n in bystander sleeping; do
	! grep -q "containers stopped while.*$n" "$T/out" || soft_fail "the plan names $n"
done
check_eq "$UP" "$(states)" "containers after a dry run"

# --- a restore: down while it writes (seen from the held database load) ----
if [ -n "$MARIA" ]; then
	# a global read lock held by another session: the load waits for it
	mkfifo "$T/lockin"
	sql < "$T/lockin" > /dev/null 2>&1 &
	LOCKPID=$!
	exec 7> "$T/lockin"
	echo "FLUSH TABLES WITH READ LOCK; SELECT 1;" >&7
	waiting() { sql -e "SELECT COUNT(*) FROM information_schema.processlist WHERE user = '$MUSER' AND command <> 'Sleep' AND state LIKE 'Waiting for%lock%' AND (db = '$DB' OR info LIKE '%$DB%')" | grep -qv '^0$'; }
	"$COFFER" -r "$R" restore latest --all --yes "${RARGS[@]}" > "$T/bg.out" 2> "$T/bg.err" 7>&- &
	PID=$!
	E2E_PIDS+=($PID)
	wait_for waiting || soft_fail "the database load never waited for the lock"
	DURING=$(states)
	check_eq "False False True False" "$DURING" "containers while restoring (labelled, mounter down)"
	check_eq one "$(cat "$T/vol/a/one")" "the volume is restored before the database (with the containers down)"
	exec 7>&-  # the lock session ends: the load goes on
	wait $PID
	RC=$?
	LOCKPID=
	cat "$T/bg.err" >&2
	check_eq 0 "$RC" "exit code of the restore"
	assert_contains "$T/bg.out" "stopped containers: " "the report names the stopped containers"
	assert_contains "$T/bg.out" "started containers again: " "the report names the started containers"
	check_eq one "$(cat "$T/vol/a/one")" "volume a restored"
	check_eq 2 "$(sql -e "SELECT COUNT(*) FROM \`$DB\`.t")" "the database restored"
else
	cof -r "$R" restore latest --all --yes
	assert_contains "$T/out" "started containers again: " "the report names the started containers"
	check_eq one "$(cat "$T/vol/a/one")" "volume a restored"
fi
check_eq "$UP" "$(states)" "containers after the restore"

# --- a restore that fails (its database part): started again all the same --
echo changed > "$T/vol/a/one"
if [ -n "$MARIA" ]; then
	expect_exit 1 "$COFFER" -r "$R" restore latest --all --yes --mariadb "mariadb://nobody:wrong@$MHOST:$MPORT/"
	assert_contains "$T/err" "database $DB was not restored" "the failed part is named"
	assert_contains "$T/out" "started containers again: " "started again after the failure"
	check_eq one "$(cat "$T/vol/a/one")" "the volume part of the failed restore stands"
	check_eq "$UP" "$(states)" "containers after a failed restore"
fi

# --- SIGTERM in the middle: started again -----------------------------------
if [ -n "$MARIA" ]; then
	echo changed > "$T/vol/a/one"
	mkfifo "$T/lockin2"
	sql < "$T/lockin2" > /dev/null 2>&1 &
	LOCKPID=$!
	exec 7> "$T/lockin2"
	echo "FLUSH TABLES WITH READ LOCK; SELECT 1;" >&7
	"$COFFER" -r "$R" restore latest --all --yes "${RARGS[@]}" > "$T/bg.out" 2> "$T/bg.err" 7>&- &
	PID=$!
	E2E_PIDS+=($PID)
	wait_for waiting || soft_fail "the database load never waited for the lock"
	check_eq "False False True False" "$(states)" "containers while restoring (second run)"
	kill -TERM $PID
	sleep 0.2
	exec 7>&-
	wait $PID
	RC=$?
	LOCKPID=
	cat "$T/bg.err" >&2
	check_eq 130 "$RC" "exit code after SIGTERM"
	check_eq "$UP" "$(states)" "containers after SIGTERM"
fi

# --- --no-stop: nothing stopped ---------------------------------------------
echo changed > "$T/vol/a/one"
cof -r "$R" restore latest --all --yes --no-stop "${RARGS[@]}"
assert_contains "$T/out" "containers: not stopped (--no-stop)" "--no-stop in the plan"
assert_not_contains "$T/out" "stopped containers: " "--no-stop stops nothing"
check_eq one "$(cat "$T/vol/a/one")" "restored with --no-stop"

# --- an explicit engine that cannot be reached: refused, nothing written ---
echo changed > "$T/vol/a/one"
expect_exit 1 env COFFER_DOCKER_HOST="unix://$T/nonexistent.sock" "$COFFER" -r "$R" restore latest --all --yes "${RARGS[@]}"
assert_one_line_err "an unreachable engine"
assert_contains "$T/err" "nonexistent.sock" "the socket is named"
check_eq changed "$(cat "$T/vol/a/one")" "nothing restored with an unreachable engine"
check_eq "$UP" "$(states)" "containers at the end"

e2e_done
