#!/bin/bash
# sqlite_replica_golden.sh - tests/golden/repo-replica (written by the first
# coffer that replicates SQLite; tests/golden/make-golden-replica.sh) still
# reads: `sqlite list --json` shows the generation repo-replica.json
# recorded, a restore as of its base holds 0 rows, the latest (and one as
# of its last transaction) all 20, each passing integrity_check; a segment
# stored under another segment's name is refused, naming it.
. "$(dirname "$0")/lib.sh"
e2e_setup
"$PY" -c 'import sqlite3' 2>/dev/null || skip "python3 sqlite3 module missing"
src=${COFFER_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
G=$T/repo
cp -r "$src/tests/golden/repo-replica" "$G" || fail "copy tests/golden/repo-replica"
printf 'golden\n' > "$PWFILE"
DB=/tmp/coffer-golden-replica/app.db
export TZ=UTC
cof -r "$G" --json sqlite list "$DB"
"$PY" - "$T/out" "$src/tests/golden/repo-replica.json" <<'PY' || fail "sqlite list differs from repo-replica.json"
import json, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
if got != want:
    print("got", got, "\nwant", want)
    sys.exit(1)
PY
from=$(json_field "$T/out" 'j[0]["from"]')
to=$(json_field "$T/out" 'j[0]["to"]')
rows()
{
	"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); assert c.execute("pragma integrity_check").fetchone()[0]=="ok"; print(c.execute("select count(*), coalesce(sum(n),0) from log").fetchone())' "$1"
}
cof -r "$G" restore --sqlite "$DB" --time "$from" --target "$T/base.db"
assert_eq "(0, 0)" "$(rows "$T/base.db")" "rows as of the base"
cof -r "$G" restore --sqlite "$DB" --time "$to" --target "$T/to.db"
assert_eq "(20, 210)" "$(rows "$T/to.db")" "rows as of the last transaction"
cof -r "$G" sqlite restore --sqlite "$DB" --target "$T/latest.db"
assert_eq "(20, 210)" "$(rows "$T/latest.db")" "rows of the latest restore"
# segment 1 stored as segment 2: its name is its associated data
d=$(ls -d "$G"/sqlite-*)
s1=$(ls "$d"/*.0000000000000001)
cp "$s1" "${s1%.0000000000000001}.0000000000000002"
expect_exit 1 "$COFFER" -r "$G" restore --sqlite "$DB" --target "$T/bad.db"
assert_one_line_err "swapped segment"
assert_contains "$T/err" "0000000000000002" "the error names the segment"
[ ! -e "$T/bad.db" ] || fail "a failed restore left its target"
e2e_done
