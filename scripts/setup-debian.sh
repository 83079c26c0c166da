#!/bin/sh
# Install what coffer needs to build and test on Debian 12.  Run it as root,
# or as a user with sudo: it then runs itself again through sudo.
set -eu
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo sh "$0" "$@"
	fi
	echo "setup-debian.sh: installing packages needs root, and sudo is not installed: run it as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential cmake pkg-config clang libclang-rt-14-dev \
	libsodium-dev libzstd-dev libjansson-dev libcmocka-dev libarchive-dev \
	libsqlite3-dev sqlite3 libcurl4-openssl-dev libssl-dev libexpat1-dev libmariadb-dev \
	libmicrohttpd-dev ca-certificates curl python3 attr strace tzdata procps time \
	faketime mariadb-client fiu-utils gdb libpq-dev postgresql-client-15 prometheus
