#!/bin/bash
# swift-s3-down.sh [STATE_DIR] - stop the servers swift-s3-up.sh started from
# STATE_DIR (default $SWIFT_DIR or /tmp/coffer-swift), by their recorded pids.
# Add --purge to also delete the state directory.
D=${1:-${SWIFT_DIR:-/tmp/coffer-swift}}
for n in proxy proxy-tls object container account memcached; do
	[ -f "$D/$n.pid" ] && kill "$(cat "$D/$n.pid")" 2>/dev/null
done
for n in proxy proxy-tls object container account memcached; do
	for _ in $(seq 50); do
		[ -f "$D/$n.pid" ] && kill -0 "$(cat "$D/$n.pid")" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$D/$n.pid"
done
[ "${2:-}" = "--purge" ] && rm -rf "$D"
echo stopped >&2
