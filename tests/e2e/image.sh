#!/bin/bash
# image.sh - the project's Dockerfile builds and its image works, without a
# Docker engine or a registry: the base image its FROM lines name is made here
# (debootstrap --variant=minbase bookworm, one rootfs for the build and the slim
# runtime stage), the Dockerfile is built with buildah (chroot isolation, vfs
# storage) and run with podman (runc, cgroupfs).  The image's agent backs up a
# mounted directory, the compose example's app-data volume and (with
# COFFER_TEST_MARIADB) a MariaDB database into a mounted local repository
# (`agent --once`), its healthcheck passes afterwards, a restore container
# puts back the same bytes, the runtime stage holds no compiler and runs as
# the documented user (root; the "coffer" user, uid 10001, owns the state
# directory), and the image carries the HEALTHCHECK, ENTRYPOINT and CMD the
# Dockerfile names.  Every coffer command line and environment of examples/
# (examples_extract.py, as in examples.sh) is validated by the image's own
# binary, and the programs the hook templates name are in the image.
#
# The restore profile of examples/docker-compose.yml, run as `docker compose
# --profile restore run --rm restore` would: its command, environment,
# env_file, secrets (files under /run/secrets) and volumes are read from the
# compose file; the Docker socket is podman's Docker-compatible API service
# on the test's store, and the "app" container (its labels and volume from
# the compose file, a sleeper instead of nginx) runs on it.  After the volume
# is damaged and the database dropped, the restore brings back the volume
# (compare_trees) and the database (CHECKSUM TABLE, the view), with the app
# stopped while it writes (seen from the database load, which a held global
# read lock keeps waiting) and running again afterwards.  What differs from
# compose, and why, is said where the container is started.
#
# Slow (minutes cold), so it runs only with COFFER_TEST_IMAGE=1 (CI sets it);
# skipped (77) without buildah, podman, runc or debootstrap.  The rootfs
# tarball and the container storage are cached in $COFFER_BUILD_DIR/image-cache,
# so a re-run only rebuilds what changed (buildah --layers).
. "$(dirname "$0")/lib.sh"
e2e_setup

[ "${COFFER_TEST_IMAGE:-}" = 1 ] || skip "set COFFER_TEST_IMAGE=1 to build and run the Docker image (takes minutes)"
for t in buildah podman runc debootstrap; do
	command -v "$t" > /dev/null || skip "$t is not installed (apt-get install buildah podman runc debootstrap)"
done
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot isolation)"
SRC=${COFFER_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${COFFER_BUILD_DIR:-$T}/image-cache
MIRROR=${COFFER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE" || fail "mkdir $CACHE"
CACHE=$(cd "$CACHE" && pwd)  # podman keeps the absolute path in its database
t0=$(date +%s)

# One private container storage for buildah and podman, not the host's.
# vfs keeps every layer in full and the layer cache keeps old builds: start
# it afresh when it has grown past 8 GiB (the rootfs tarball stays).
if [ -d "$CACHE/storage" ] && [ "$(du -sm "$CACHE/storage" | cut -f1)" -gt 8192 ]; then
	note "the image cache has grown past 8 GiB: starting it afresh"
	rm -rf "$CACHE/storage" "$CACHE/run" "$CACHE/base.stamp"
fi
STORE=(--root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver vfs)
podman_conf
B=(buildah "${STORE[@]}")
P=(podman "${STORE[@]}" --cgroup-manager cgroupfs --runtime runc)
RUN0=("${P[@]}" run --rm --ulimit nofile=1024:20000 --ulimit nproc=1024:1024)
RUN=("${RUN0[@]}" --network none)
LOCKPID=
img_cleanup()
{
	[ -z "$LOCKPID" ] || kill "$LOCKPID" 2> /dev/null
	[ -z "${DB:-}" ] || sql -e "DROP DATABASE IF EXISTS \`$DB\`" 2> /dev/null
	"${P[@]}" rm -a -f -t 0 > /dev/null 2>&1
	[ -z "${VOL:-}" ] || "${P[@]}" volume rm -f "$VOL" > /dev/null 2>&1
	grep -o " $CACHE/[^ ]*" /proc/mounts 2> /dev/null | sort -r | xargs -r umount 2> /dev/null
	e2e_cleanup
}
trap img_cleanup EXIT

# --- the base image(s) the Dockerfile names --------------------------------
# every FROM image that is not an earlier stage of the same Dockerfile
mapfile -t BASES < <(awk 'toupper($1) == "FROM" {
		img = ""; for (i = 2; i <= NF; i++) if ($i !~ /^--/) { img = $i; break }
		if (tolower($(NF-1)) == "as") stage[tolower($NF)] = 1
		if (img != "" && !(tolower(img) in stage) && img != "scratch") print img
	}' "$SRC/Dockerfile" | sort -u)
[ "${#BASES[@]}" -gt 0 ] || fail "no FROM image found in $SRC/Dockerfile"
for b in "${BASES[@]}"; do
	case $b in
	debian:bookworm*|docker.io/library/debian:bookworm*) ;;
	*) fail "Dockerfile: FROM $b: this test can only make Debian bookworm base images" ;;
	esac
done
ROOTFS_TAR=$CACHE/bookworm-minbase.tar
if [ ! -s "$ROOTFS_TAR" ]; then
	note "debootstrap --variant=minbase bookworm (once; cached in $ROOTFS_TAR)"
	debootstrap --variant=minbase bookworm "$T/rootfs" "$MIRROR" > "$T/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$T/debootstrap.log" >&2; fail "debootstrap bookworm from $MIRROR failed"; }
	rm -rf "$T/rootfs/var/cache/apt/archives/"*.deb "$T/rootfs/var/lib/apt/lists/"*_Packages
	tar -C "$T/rootfs" --numeric-owner -cf "$ROOTFS_TAR.tmp" . || fail "tar the rootfs"
	mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
	rm -rf "$T/rootfs"
fi
mkdir -p "$T/base"
ln "$ROOTFS_TAR" "$T/base/rootfs.tar" 2> /dev/null || cp "$ROOTFS_TAR" "$T/base/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n' > "$T/base/Containerfile"
if ! "${B[@]}" inspect --type image coffer-test-base:bookworm > /dev/null 2>&1 ||
   [ "$ROOTFS_TAR" -nt "$CACHE/base.stamp" ]; then
	"${B[@]}" bud --isolation chroot --pull=never -f "$T/base/Containerfile" -t coffer-test-base:bookworm \
		"$T/base" > "$T/base.log" 2>&1 || { tail -n 20 "$T/base.log" >&2; fail "building the base image"; }
	touch "$CACHE/base.stamp"
fi
for b in "${BASES[@]}"; do
	name=${b#docker.io/library/}
	"${B[@]}" tag coffer-test-base:bookworm "$name" "docker.io/library/$name" > /dev/null 2>&1 ||
		fail "tagging the base image as $b"
done
t1=$(date +%s)

# --- the project's Dockerfile ----------------------------------------------
# docker format: the OCI format has no HEALTHCHECK
note "buildah bud $SRC/Dockerfile"
if ! (cd "$SRC" && "${B[@]}" bud --isolation chroot --pull=never --layers --format docker \
		--ulimit nofile=1024:20000 --ulimit nproc=1024:1024 -t coffer:test .) > "$T/build.log" 2>&1; then
	tail -n 40 "$T/build.log" >&2
	fail "the Dockerfile does not build (buildah bud)"
fi
t2=$(date +%s)
inspect() { "${P[@]}" image inspect --format "$1" coffer:test; }
check_eq '[coffer]' "$(inspect '{{.Config.Entrypoint}}')" "ENTRYPOINT"
check_eq '[agent]' "$(inspect '{{.Config.Cmd}}')" "CMD"
check_eq '[CMD coffer healthcheck]' "$(inspect '{{if .HealthCheck}}{{.HealthCheck.Test}}{{end}}')" "HEALTHCHECK"

# --- runtime stage: no toolchain, the documented user; the examples ---------
# (stderr of the checks goes to the log; only the verdict is asserted)
# (one container: each costs a full copy of the image with vfs)
# The examples' command lines, as examples.sh extracts them, become one sh
# script run by the image's binary (each with its container's environment).
mkdir -p "$T/check"
if "$PY" -c 'import yaml' 2> /dev/null; then
	"$PY" "$(dirname "$0")/examples_extract.py" script "$SRC/examples" "$SRC/Dockerfile" > "$T/check/examples.sh" ||
		fail "examples_extract.py script failed"
else
	note "python3-yaml is not installed: the examples are not run in the image, the compose restore profile is not run"
fi
expect_exit 0 "${RUN[@]}" -v "$T/check:/check" --entrypoint /bin/sh coffer:test -c \
	'id -u; getent passwd coffer | cut -d: -f3,6; stat -c %U /var/lib/coffer;
	 for t in gcc cc c99 cmake make ld; do command -v $t; done; ls /usr/include/sodium.h 2>/dev/null;
	 if [ -f /check/examples.sh ]; then sh /check/examples.sh > /check/out 2>&1; echo $? > /check/rc; fi; true'
check_eq "0 10001:/var/lib/coffer coffer" "$(head -n 3 "$T/out" | tr '\n' ' ' | sed 's/ $//')" \
	"uid, coffer user, owner of the state directory"
tools=$(tail -n +4 "$T/out" | tr '\n' ' ')
[ -z "$tools" ] || soft_fail "the runtime image holds build tools: $tools"
check_eq '' "$(inspect '{{.Config.User}}')" "image user (root by default, doc/agent.md)"
if [ -s "$T/check/examples.sh" ]; then
	grep -v '^ok ' "$T/check/out" | sed 's/^/    in the image: /' >&2
	check_eq 0 "$(cat "$T/check/rc" 2> /dev/null)" "exit status of the examples' command lines run in the image"
	n=$(grep -c '^if ' "$T/check/examples.sh")
	check_eq "$n" "$(grep -c '^ok ' "$T/check/out")" "example command lines and environments the image accepts"
	# a broken extractor must not pass by finding nothing
	[ "$n" -ge 24 ] || soft_fail "only $n example checks extracted (expected at least 18 command lines, 4 environments, 2 hook programs)"
	for want in "docker-compose.yml:restore: coffer restore /x --all --yes" "coffer.env:COFFER_PRE_COMMAND: program curl"; do
		grep -qxF "ok   $want" "$T/check/out" || soft_fail "in the image: no 'ok   $want'"
	done
fi
expect_exit 0 "${RUN[@]}" --user 10001:10001 coffer:test agent --print-schedule 1
check_eq 1 "$(wc -l < "$T/out")" "the image runs as the coffer user"

# --- back up with the agent, check health, restore with the image -----------
# the compose example's restore and app services, as `docker compose` reads them
COMPOSE=$SRC/examples/docker-compose.yml
X=$(dirname "$0")/examples_extract.py
VOL=
if [ -s "$T/check/examples.sh" ]; then
	"$PY" "$X" service "$COMPOSE" app > "$T/app.json" || fail "reading the app service of $COMPOSE"
	# the named volume mounted at /backup/app-data by the backup and restore services
	VOL=$("$PY" "$X" service "$COMPOSE" backup | "$PY" -c '
import json, sys
print([v.split(":")[0] for v in json.load(sys.stdin)["volumes"] if v.split(":")[1] == "/backup/app-data"][0])') ||
		fail "$COMPOSE: no volume at /backup/app-data in the backup service"
	"${P[@]}" volume rm -f "$VOL" > /dev/null 2>&1
	"${P[@]}" volume create "$VOL" > /dev/null || fail "podman volume create $VOL"
	VOLDIR=$("${P[@]}" volume inspect --format '{{.Mountpoint}}' "$VOL") || fail "podman volume inspect $VOL"
	# what the app wrote into it (kept aside to compare with the restored volume)
	mkdir -p "$T/app/img/thumbs" "$T/app/empty"
	printf '<h1>shop</h1>\n' > "$T/app/index.html"
	randfile "$T/app/img/logo.bin" 200000
	randfile "$T/app/img/thumbs/t1.bin" 5000
	printf 'a=1\n' > "$T/app/config.ini"
	chmod 600 "$T/app/config.ini"
	ln -s img/logo.bin "$T/app/logo"
	touch -d '2026-03-04 05:06:07' "$T/app/img/thumbs" "$T/app"
	cp -a "$T/app/." "$VOLDIR/" || fail "filling the volume $VOL"
	AGENT_VOL=(-v "$VOL:/backup/app-data:ro")
fi
# the database (the compose backup service dumps mariadb://root@db/shop)
MARIA=
AGENT_DB=()
NET=(--network none)
if [ -z "$VOL" ]; then
	:
elif [ -n "${COFFER_TEST_MARIADB:-}" ] && command -v mariadb > /dev/null; then
	MARIA=1
	read -r MUSER MPASS MHOST MPORT < <("$PY" -c '
import sys, urllib.parse as u
p = u.urlparse(sys.argv[1]); print(p.username, p.password or "", p.hostname, p.port or 3306)' "$COFFER_TEST_MARIADB")
	sql() { mariadb --no-defaults -N -u"$MUSER" ${MPASS:+-p"$MPASS"} -h"$MHOST" -P"$MPORT" "$@"; }
	MHOSTIP=$(getent ahostsv4 "$MHOST" | awk 'NR == 1 { print $1 }')
	DB=shop_img_$$_$RANDOM
	sql -e "CREATE DATABASE \`$DB\`; USE \`$DB\`;
		CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(8,2), note TEXT);
		INSERT INTO items VALUES (1, 'mug', 7.50, NULL), (2, 'café filter', 3.20, 'x\ny'), (3, 'kettle', 39.00, REPEAT('k', 3000));
		CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, item INT, qty INT, KEY (item));
		INSERT INTO orders (item, qty) VALUES (1, 2), (3, 1), (2, 10);
		CREATE VIEW totals AS SELECT o.id, i.name, o.qty * i.price AS total FROM orders o JOIN items i ON i.id = o.item;" ||
		fail "cannot create the test database"
	checksums() { sql -e "CHECKSUM TABLE \`$DB\`.items, \`$DB\`.orders; SELECT COUNT(*), SUM(total) FROM \`$DB\`.totals"; }
	CK=$(checksums) || fail "CHECKSUM TABLE before the backup"
	# the container reaches the test server on the host's loopback
	NET=(--network host)
	AGENT_DB=(-e "COFFER_MARIADB=mariadb://$MUSER:$MPASS@$MHOSTIP:$MPORT/$DB")
else
	note "COFFER_TEST_MARIADB is not set (or no mariadb client): the compose restore profile restores the volume only"
fi
mkdir -p "$T/src/sub" "$T/repo" "$T/state" "$T/restore"
randfile "$T/src/big.bin" 3000000
randfile "$T/src/sub/small.bin" 1000
printf 'hello from the image test\n' > "$T/src/sub/hello.txt"
ln -s hello.txt "$T/src/sub/link"
chmod 640 "$T/src/sub/hello.txt"
touch -d '2026-01-02 03:04:05' "$T/src/sub"
init_repo "$T/repo"
VOLS=(-v "$T/repo:/repo" -v "$T/state:/var/lib/coffer" -v "$PWFILE:/run/secrets/coffer_password:ro"
      -e COFFER_REPOSITORY=/repo -e COFFER_PASSWORD_FILE=/run/secrets/coffer_password)
expect_exit 0 "${RUN0[@]}" "${NET[@]}" "${VOLS[@]}" -v "$T/src:/backup/data:ro" "${AGENT_VOL[@]}" "${AGENT_DB[@]}" \
	-e COFFER_HOST=image-test --entrypoint /bin/sh coffer:test -c 'coffer agent --once && coffer healthcheck'
assert_contains "$T/err" "result=success" "the agent's log line"
cof -r "$T/repo" --json snapshots
want="['/backup/data']"
[ -z "$VOL" ] || want="['/backup/app-data', '/backup/data']"
[ -z "$MARIA" ] || want="['/backup/app-data', '/backup/data', 'mariadb/$DB.sql']"
check_eq "1 image-test $want" "$(json_field "$T/out" '"%d %s %s" % (len(j), j[0]["hostname"], sorted(j[0]["paths"]))')" \
	"snapshot written by the image"
SNAP=$(json_field "$T/out" 'j[0]["short_id"]')
[ -z "$MARIA" ] || check_eq "mariadb" "$(json_field "$T/out" '" ".join(s["kind"] for s in j[0].get("sources", []) if s["kind"] != "volume")')" \
	"the snapshot holds the database dump"
expect_exit 0 "${RUN[@]}" "${VOLS[@]}" -v "$T/restore:/restore" coffer:test restore latest --target /restore
compare_trees "$T/src" "$T/restore/backup/data"
t3=$(date +%s)
[ -n "$VOL" ] || { note "figures: base image $((t1 - t0)) s, Dockerfile build $((t2 - t1)) s, runs $((t3 - t2)) s, total $((t3 - t0)) s"; e2e_done; }

# --- the compose file's restore profile -------------------------------------
# podman's Docker API on the test's store (as restore_containers.sh), and the
# app service on it: the compose file's labels and volume, a sleeper image
# (no nginx image offline)
SOCK=$T/podman.sock
"${P[@]}" system service --time=0 "unix://$SOCK" > "$T/service.log" 2>&1 &
E2E_PIDS+=($!)
sleeper_image localhost/coffer-test-sleeper:latest "${P[@]}" ||
	fail "podman cannot import the sleeper image: $(tail -n 1 "$T/image.log")"
mapfile -d '' APP < <("$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))
a = []
for k, v in (j["labels"] or {}).items():
    a += ["--label", "%s=%s" % (k, v)]
for v in j["volumes"]:
    a += ["-v", v]
sys.stdout.write("".join(x + "\0" for x in a))' "$T/app.json")
grep -q coffer.stop-during-backup "$T/app.json" || soft_fail "the compose app service has no coffer.stop-during-backup label"
# (--stop-signal KILL: sleep as PID 1 ignores SIGTERM, which would make every
# stop wait COFFER_STOP_TIMEOUT, 30 s in coffer.env; nginx stops on its signal)
APPNAME=shop-app-1
"${P[@]}" run -d --name "$APPNAME" --network none --stop-signal KILL "${APP[@]}" \
	localhost/coffer-test-sleeper /bin/sleep infinity \
	> "$T/pod.log" 2>&1 || fail "podman run the app container: $(tail -n 2 "$T/pod.log")"
state() { "${P[@]}" inspect --format '{{.State.Running}} {{.State.StartedAt}}' "$APPNAME"; }
wait_for test -S "$SOCK" || fail "podman's API service did not start: $(tail -n 2 "$T/service.log")"
APP_BEFORE=$(state)
check_eq true "${APP_BEFORE%% *}" "the app runs before the restore"

# the damage: files changed, deleted, added, a symlink planted; the database dropped
printf 'defaced\n' > "$VOLDIR/index.html"
rm "$VOLDIR/img/thumbs/t1.bin" "$VOLDIR/logo"
printf 'junk\n' > "$VOLDIR/img/added.txt"
ln -s /etc/shadow "$VOLDIR/empty/planted"
chmod 644 "$VOLDIR/config.ini"
[ -z "$MARIA" ] || sql -e "DROP DATABASE \`$DB\`" || fail "DROP DATABASE"

# the service as compose runs it: command (COFFER_RESTORE_SNAPSHOT set to the
# snapshot's id, as the header shows), env_file + environment, secrets as
# /run/secrets/NAME, volumes (app-data as the project's named volume).
# Overridden, because the test has no MinIO or MariaDB container and no
# Docker engine at /var/run/docker.sock:
#   COFFER_REPOSITORY  s3:http://s3:9000/backups -> /repo, the local repository the agent wrote (mounted)
#   COFFER_MARIADB     mariadb://root@db/ -> mariadb://USER@db:PORT/, the test server's user and port
#                      (db resolves to it through --add-host; the password still comes from the
#                      db_root_password secret through MARIADB_PASSWORD_FILE, as in compose)
#   /var/run/docker.sock (host side) -> the podman API socket
#   --network host instead of the project network (the test server listens on the host's
#   loopback), so --hostname gives the container the name it is inspected by (compose's
#   default hostname, the container id, serves the same purpose)
# The secret files hold the test's values.  (The snapshot also holds /backup/data,
# the directory of the part above, which the restore puts into the container's
# own file system: a compose snapshot would not have it.)
mkdir -p "$T/secrets"
cp "$PWFILE" "$T/secrets/coffer_password"
printf 'not-used-with-a-local-repository' > "$T/secrets/s3_secret"
printf '%s' "${MPASS:-unused}" > "$T/secrets/db_root_password"
OVR=(COFFER_REPOSITORY=/repo)
[ -z "$MARIA" ] || OVR+=("COFFER_MARIADB=mariadb://$MUSER@db:$MPORT/")
COFFER_RESTORE_SNAPSHOT=$SNAP "$PY" "$X" service "$COMPOSE" restore > "$T/restore.json" ||
	fail "reading the restore service of $COMPOSE"
check_eq "restore $SNAP --all --yes" "$(json_field "$T/restore.json" '" ".join(j["command"])')" \
	"the restore service's command, \${COFFER_RESTORE_SNAPSHOT:-latest} expanded"
mapfile -d '' RSVC < <("$PY" - "$T/restore.json" "$T" "$SOCK" "${OVR[@]}" << 'PYEOF'
import json, os, sys
j = json.load(open(sys.argv[1]))
t, sock = sys.argv[2:4]
env = j["env"]
for kv in sys.argv[4:]:
    k, _, v = kv.partition("=")
    if k not in env:
        sys.exit("the restore service does not set %s: nothing to override" % k)
    env[k] = v
with open(t + "/restore.env", "w") as f:
    f.writelines("%s=%s\n" % kv for kv in env.items())
a = ["--env-file", t + "/restore.env"]
for name in j["secrets"]:
    if not os.path.exists("%s/secrets/%s" % (t, name)):
        sys.exit("the restore service uses the secret %s, which the test does not fill" % name)
    a += ["-v", "%s/secrets/%s:/run/secrets/%s:ro" % (t, name, name)]
for v in j["volumes"]:
    src, _, rest = v.partition(":")
    if src == "/var/run/docker.sock":
        src = sock
    elif src.startswith("/") or src.startswith("."):
        sys.exit("the restore service bind-mounts %s: the test does not know what to put there" % src)
    a += ["-v", src + ":" + rest]
a += [j["image"]] + j["command"]
sys.stdout.write("".join(x + "\0" for x in a))
PYEOF
)
[ "${#RSVC[@]}" -gt 3 ] || fail "could not build the restore container's arguments from $COMPOSE"
# the image the compose file names is the one just built
"${B[@]}" tag coffer:test "$(json_field "$T/restore.json" 'j["image"]')" > /dev/null || fail "tagging the image as the compose file names it"
RNAME=shop-restore-run
RC_CMD=("${RUN0[@]}" --name "$RNAME" --hostname "$RNAME" --network host --add-host "db:${MHOSTIP:-127.0.0.1}"
	-v "$T/repo:/repo" "${RSVC[@]}")
if [ -n "$MARIA" ]; then
	# a global read lock held by another session: the database load waits
	# for it, a fixed point after the volume is written and before the app
	# is started again
	mkfifo "$T/lockin"
	sql < "$T/lockin" > /dev/null 2>&1 &
	LOCKPID=$!
	exec 7> "$T/lockin"
	echo "FLUSH TABLES WITH READ LOCK; SELECT 1;" >&7
	waiting() { sql -e "SELECT COUNT(*) FROM information_schema.processlist WHERE user = '$MUSER' AND command <> 'Sleep' AND state LIKE 'Waiting for%lock%' AND (db LIKE '$DB%' OR info LIKE '%$DB%')" | grep -qv '^0$'; }
	"${RC_CMD[@]}" > "$T/restore.out" 2> "$T/restore.err" 7>&- &
	RPID=$!
	# the restore container's start is a full vfs copy of the image: up to 5 minutes
	for ((i = 0; i < 600; i++)); do
		waiting && break
		kill -0 $RPID 2> /dev/null || break
		sleep 0.5
	done
	if waiting; then
		check_eq false "$(state | cut -d' ' -f1)" "the app while the restore writes (stopped)"
		check_eq '<h1>shop</h1>' "$(cat "$VOLDIR/index.html")" "the volume is restored before the database"
	else
		soft_fail "the database load of the restore container never waited for the lock"
	fi
	exec 7>&-  # the lock session ends: the load goes on
	wait $RPID
	RC=$?
	LOCKPID=
else
	"${RC_CMD[@]}" > "$T/restore.out" 2> "$T/restore.err"
	RC=$?
fi
sed 's/^/    restore service: /' "$T/restore.out" "$T/restore.err" >&2
check_eq 0 "$RC" "exit code of the compose restore service"
grep -q "stopped containers: .*$APPNAME" "$T/restore.out" || soft_fail "the restore's report does not name $APPNAME as stopped"
grep -q "started containers again: .*$APPNAME" "$T/restore.out" || soft_fail "the restore's report does not name $APPNAME as started again"
compare_trees "$T/app" "$VOLDIR"
if [ -n "$MARIA" ]; then
	check_eq "$CK" "$(checksums)" "CHECKSUM TABLE and the view after the compose restore"
fi
APP_AFTER=$(state)
check_eq true "${APP_AFTER%% *}" "the app runs after the restore"
[ "$APP_AFTER" != "$APP_BEFORE" ] || soft_fail "the app was not restarted by the restore (StartedAt unchanged: $APP_AFTER)"
t4=$(date +%s)
note "figures: base image $((t1 - t0)) s, Dockerfile build $((t2 - t1)) s, runs $((t3 - t2)) s, compose restore $((t4 - t3)) s, total $((t4 - t0)) s"
e2e_done
