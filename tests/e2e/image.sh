#!/bin/bash
# image.sh - the project's Dockerfile builds and its image works, without a
# Docker engine or a registry: the base image its FROM lines name is made here
# (debootstrap --variant=minbase bookworm, one rootfs for the build and the slim
# runtime stage), the Dockerfile is built with buildah (chroot isolation, vfs
# storage) and run with podman (runc, cgroupfs).  The image's agent backs up a
# mounted directory into a mounted local repository (`agent --once`), its
# healthcheck passes afterwards, a restore container puts back the same bytes,
# the runtime stage holds no compiler and runs as the documented user (root;
# the "coffer" user, uid 10001, owns the state directory), and the image
# carries the HEALTHCHECK, ENTRYPOINT and CMD the Dockerfile names.
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
RUN=("${P[@]}" run --rm --network none --ulimit nofile=1024:20000 --ulimit nproc=1024:1024)
img_cleanup()
{
	"${P[@]}" rm -a -f -t 0 > /dev/null 2>&1
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

# --- runtime stage: no toolchain, the documented user -----------------------
# (stderr of the checks goes to the log; only the verdict is asserted)
# (one container: each costs a full copy of the image with vfs)
expect_exit 0 "${RUN[@]}" --entrypoint /bin/sh coffer:test -c \
	'id -u; getent passwd coffer | cut -d: -f3,6; stat -c %U /var/lib/coffer;
	 for t in gcc cc c99 cmake make ld; do command -v $t; done; ls /usr/include/sodium.h 2>/dev/null; true'
check_eq "0 10001:/var/lib/coffer coffer" "$(head -n 3 "$T/out" | tr '\n' ' ' | sed 's/ $//')" \
	"uid, coffer user, owner of the state directory"
tools=$(tail -n +4 "$T/out" | tr '\n' ' ')
[ -z "$tools" ] || soft_fail "the runtime image holds build tools: $tools"
check_eq '' "$(inspect '{{.Config.User}}')" "image user (root by default, doc/agent.md)"
expect_exit 0 "${RUN[@]}" --user 10001:10001 coffer:test agent --print-schedule 1
check_eq 1 "$(wc -l < "$T/out")" "the image runs as the coffer user"

# --- back up with the agent, check health, restore with the image -----------
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
expect_exit 0 "${RUN[@]}" "${VOLS[@]}" -v "$T/src:/backup/data:ro" -e COFFER_HOST=image-test \
	--entrypoint /bin/sh coffer:test -c 'coffer agent --once && coffer healthcheck'
assert_contains "$T/err" "result=success" "the agent's log line"
cof -r "$T/repo" --json snapshots
check_eq "1 image-test ['/backup/data']" "$(json_field "$T/out" '"%d %s %s" % (len(j), j[0]["hostname"], j[0]["paths"])')" \
	"snapshot written by the image"
expect_exit 0 "${RUN[@]}" "${VOLS[@]}" -v "$T/restore:/restore" coffer:test restore latest --target /restore
compare_trees "$T/src" "$T/restore/backup/data"
t3=$(date +%s)
note "figures: base image $((t1 - t0)) s, Dockerfile build $((t2 - t1)) s, runs $((t3 - t2)) s, total $((t3 - t0)) s"
e2e_done
