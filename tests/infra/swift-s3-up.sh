#!/bin/bash
# swift-s3-up.sh [STATE_DIR] - start a strict S3 server for coffer's tests.
#
# OpenStack Swift with its s3api middleware, from Debian packages, listening on
# 127.0.0.1:$SWIFT_PORT (default 16080).  It checks SigV4 signatures, payload
# hashes (x-amz-content-sha256) and clock skew the way AWS does, which is why
# the tests use it rather than a lax emulator.
#
# Credentials (tempauth): AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing,
# region us-east-1, path-style URLs.  A second user of the same account,
# test:visitor / visiting, has no rights at all (not .admin, no ACLs): tests use
# it for "bucket missing and these credentials may not create it".
#
# Idempotent: if a server from STATE_DIR already answers, it is reused.  The
# packages are installed with apt-get only when missing.  On success the one
# line on stdout is the endpoint (e.g. http://127.0.0.1:16080); everything else
# goes to stderr.  Stop it with swift-s3-down.sh STATE_DIR.
#
# A second proxy on the same servers serves https on 127.0.0.1:$SWIFT_TLS_PORT
# (default SWIFT_PORT+2) with a self-signed certificate for 127.0.0.1, made
# with openssl on the first start: STATE_DIR/tls.crt is the CA file to give
# coffer (--cacert) and curl.  Swift's own cert_file/key_file settings, no
# other package.
set -euo pipefail
D=${1:-${SWIFT_DIR:-/tmp/coffer-swift}}
PORT=${SWIFT_PORT:-16080}
TLS_PORT=${SWIFT_TLS_PORT:-$((PORT + 2))}
B=$((PORT - 70)) # object, container, account servers on PORT-70..PORT-68
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "swift-s3-up: $*" >&2; }

ready() {
	curl -sf -o /dev/null -m 2 --aws-sigv4 "aws:amz:us-east-1:s3" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
		"http://test%3Atester:testing@127.0.0.1:$PORT/" &&
		curl -sf -o /dev/null -m 2 --cacert "$D/tls.crt" --aws-sigv4 "aws:amz:us-east-1:s3" \
			-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
			"https://test%3Atester:testing@127.0.0.1:$TLS_PORT/"
}

alive() {
	local n
	for n in memcached object container account proxy proxy-tls; do
		[ -f "$D/$n.pid" ] && kill -0 "$(cat "$D/$n.pid")" 2>/dev/null || return 1
	done
}

if alive && ready; then
	log "already running from $D"
	echo "$ENDPOINT"
	exit 0
fi

if ! command -v swift-proxy-server >/dev/null || ! command -v memcached >/dev/null ||
	! command -v swift-object-server >/dev/null || ! command -v openssl >/dev/null; then
	log "installing swift, memcached and openssl (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		swift-proxy swift-object swift-container swift-account memcached openssl >&2
fi
command -v curl >/dev/null || { log "curl is needed"; exit 1; }

# Half-started leftovers from an earlier run would hold the ports.
if [ -d "$D" ]; then
	for n in proxy proxy-tls object container account memcached; do
		[ -f "$D/$n.pid" ] && kill "$(cat "$D/$n.pid")" 2>/dev/null || true
	done
	sleep 0.3
fi
rm -rf "$D"
mkdir -p "$D/srv/d1" "$D/log"

i=0
for n in object container account; do
	p=$((B + i)); i=$((i + 1))
	swift-ring-builder "$D/$n.builder" create 8 1 1 >/dev/null
	swift-ring-builder "$D/$n.builder" add "r1z1-127.0.0.1:$p/d1" 100 >/dev/null
	swift-ring-builder "$D/$n.builder" rebalance >/dev/null
	cat > "$D/$n-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $p
devices = $D/srv
mount_check = false
swift_dir = $D
workers = 0
user = root
log_address = $D/log/nosyslog
[pipeline:main]
pipeline = $n-server
[app:$n-server]
use = egg:swift#$n
CONF
done

cat > "$D/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PORT
swift_dir = $D
workers = 0
user = root
log_address = $D/log/nosyslog
[pipeline:main]
pipeline = catch_errors gatekeeper proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
user_test_visitor = visiting
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$((PORT + 1))
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
CONF

# the https proxy: the same configuration on another port, with a certificate
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=127.0.0.1 \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	-keyout "$D/tls.key" -out "$D/tls.crt" 2>/dev/null
sed -e "s|^bind_port = .*|bind_port = $TLS_PORT\ncert_file = $D/tls.crt\nkey_file = $D/tls.key|" \
	"$D/proxy-server.conf" > "$D/proxy-tls-server.conf"

# setsid: the servers outlive this script and the shell that ran it.
setsid memcached -u root -l 127.0.0.1 -p $((PORT + 1)) -m 64 \
	> "$D/log/memcached.log" 2>&1 < /dev/null & echo $! > "$D/memcached.pid"
for n in object container account proxy proxy-tls; do
	setsid "swift-${n%-tls}-server" "$D/$n-server.conf" > "$D/log/$n.log" 2>&1 < /dev/null &
	echo $! > "$D/$n.pid"
done

for t in $(seq 150); do # about 30 s at most
	if ready; then
		log "ready on :$PORT, https on :$TLS_PORT (CA file $D/tls.crt) after $t polls (state in $D)"
		echo "$ENDPOINT"
		exit 0
	fi
	sleep 0.2
done
log "swift s3api did not come up"
tail -n 20 "$D"/log/*.log >&2
exit 1
