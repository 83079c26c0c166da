#!/usr/bin/env bash
# make-golden-sources.sh [COFFER] - how tests/golden/repo-sources was made: a
# repository whose one snapshot records "sources" (issue 20): two volumes, an
# SQLite file and a command dump.  NOT run by the tests (see make-golden.sh:
# written once, read by every later version; tests/e2e/snapshot_sources.sh
# checks that its sources still list as repo-sources.json says and that it
# restores).  The source tree lives at a fixed path because the snapshot
# records absolute paths.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
coffer=${1:-${COFFER:-$here/../../build/coffer}}
[ -x "$coffer" ] || { echo "usage: $0 PATH-TO-COFFER" >&2; exit 2; }
coffer=$(cd "$(dirname "$coffer")" && pwd)/$(basename "$coffer")

work=/tmp/coffer-golden-sources     # recorded in the snapshot: keep it
rm -rf "$work"
mkdir -p "$work/app" "$work/web" "$work/db"
printf 'cfg\n' > "$work/app/settings.ini"
printf 'page\n' > "$work/web/index.html"
python3 - "$work/db/app.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("create table t(x)")
c.execute("insert into t values (42)")
c.commit()
PY
printf 'golden\n' > "$work/password"
export COFFER_PASSWORD_FILE=$work/password TZ=UTC COFFER_CACHE_DIR=off
unset COFFER_REPOSITORY COFFER_PASSWORD
"$coffer" -r "$work/repo" init --kdf-passes 1 --kdf-memory 64
"$coffer" -r "$work/repo" backup "$work/app" "$work/web" --sqlite "$work/db/app.db" \
	--stdin-from-command "printf 'CREATE TABLE t;\n'" --stdin-filename dumps/app.sql \
	--time '2026-12-07 12:00:00' --host golden --tag golden
"$coffer" -r "$work/repo" --json snapshots |
	python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[0]["sources"], indent=1))' \
	> "$work/sources.json"

rm -rf "$work/repo/locks"
find "$work/repo" -type d -empty -delete
rm -rf "$here/repo-sources"
cp -r "$work/repo" "$here/repo-sources"
cp "$work/sources.json" "$here/repo-sources.json"
chmod -R u=rwX,go=rX "$here/repo-sources"
du -sh "$here/repo-sources"
echo "wrote $here/repo-sources and $here/repo-sources.json; now run tests/e2e/snapshot_sources.sh"
