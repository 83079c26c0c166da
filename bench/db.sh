#!/bin/bash
# bench/db.sh - MariaDB restore speed: coffer restore against the stock
# client loading a mariadb-dump file, on the same server (issue 25 item 6).
# Prints wall time and the server's CPU time (utime+stime of mariadbd from
# /proc) for each load.  Not a test: nothing is asserted.
#
#   COFFER_TEST_MARIADB=mariadb://coffer:pw@127.0.0.1:15306/ \
#   COFFER=build/coffer [COFFER_BASE=/path/to/older/coffer] [ROWS=600000] bench/db.sh
#
# The database: one InnoDB table of ROWS rows (~450 bytes each: a primary
# key, a UNIQUE key, a secondary index, text and a DECIMAL) and a MyISAM
# copy of a tenth of it.  COFFER_BASE, when given, is measured as well
# (backup and restore with that binary), to compare two versions.
set -u
: "${COFFER_TEST_MARIADB:?set COFFER_TEST_MARIADB}" "${COFFER:?set COFFER to the coffer binary}"
ROWS=${ROWS:-600000}
URL=${COFFER_TEST_MARIADB%/}
eval "$(python3 - "$URL" <<'EOF'
import sys, urllib.parse, shlex
u = urllib.parse.urlsplit(sys.argv[1])
args = ["--no-defaults", "-u", urllib.parse.unquote(u.username or "")]
if u.password is not None:
    args.append("-p" + urllib.parse.unquote(u.password))
args += ["-h", u.hostname, "-P", str(u.port or 3306), "--protocol=tcp"]
print("MDB_ARGS=(%s)" % " ".join(shlex.quote(a) for a in args))
EOF
)"
sql() { mariadb "${MDB_ARGS[@]}" "$@"; }
q() { sql -N -B -e "$1"; }
T=$(mktemp -d /tmp/coffer-bench-db.XXXXXX)
DB=cfbench_$$
trap 'for d in $(q "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE \"${DB}%\""); do q "DROP DATABASE \`$d\`"; done; rm -rf "$T"' EXIT
PID=$(cat "$(q 'SELECT @@pid_file')" 2>/dev/null) || { echo "cannot read the server's pid file" >&2; exit 1; }
server_cpu() { awk '{ printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$PID/stat"; }
now() { date +%s.%N; }

echo "making $DB: $ROWS rows"
q "CREATE DATABASE $DB; USE $DB; CREATE TABLE $DB.t (id INT PRIMARY KEY, code CHAR(32) NOT NULL, grp INT NOT NULL,
   amount DECIMAL(12,2), note VARCHAR(400), UNIQUE KEY (code), KEY (grp)) ENGINE=InnoDB;
   INSERT INTO $DB.t SELECT seq, MD5(seq), seq % 1000, seq / 7, REPEAT(SHA2(seq, 256), 6) FROM seq_1_to_$ROWS;
   CREATE TABLE $DB.m ENGINE=MyISAM AS SELECT * FROM $DB.t WHERE id % 10 = 0; ALTER TABLE $DB.m ADD KEY (grp);"
q "ANALYZE TABLE $DB.t, $DB.m" > /dev/null
SIZE=$(q "SELECT ROUND(SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$DB'")
REF=$(q "CHECKSUM TABLE $DB.t, $DB.m" | cut -f2 | tr '\n' ' ')
echo "database: $SIZE MiB on the server"

measure() # NAME TARGET_DB CMD...
{
	local name=$1 target=$2 c0 c1 t0 t1 sum
	shift 2
	q "DROP DATABASE IF EXISTS \`$target\`; CREATE DATABASE \`$target\`"
	c0=$(server_cpu); t0=$(now)
	"$@" > /dev/null 2> "$T/err" || {
		t1=$(now) echo "$name failed: $(tail -3 "$T/err")" >&2; return 1; }
	t1=$(now); c1=$(server_cpu)
	sum=$(q "CHECKSUM TABLE \`$target\`.t, \`$target\`.m" | cut -f2 | tr '\n' ' ')
	printf '%-34s wall %6.1f s   server CPU %6.1f s   %s\n' "$name" "$(echo "$t1 - $t0" | bc)" \
		"$(echo "$c1 - $c0" | bc)" "$([ "$sum" = "$REF" ] && echo "checksums equal" || echo "CHECKSUMS DIFFER")"
}

mariadb-dump "${MDB_ARGS[@]}" --single-transaction "$DB" > "$T/dump.sql"
echo "mariadb-dump file: $(( $(stat -c %s "$T/dump.sql") >> 20 )) MiB"
measure "mariadb < mariadb-dump file" "${DB}_stock" sh -c 'mariadb "$@" '"${DB}_stock"' < '"$T/dump.sql" sh "${MDB_ARGS[@]}"

for bin in "$(realpath "$COFFER")" ${COFFER_BASE:+"$(realpath "$COFFER_BASE")"}; do
	R=$T/repo-$(basename "$(dirname "$(dirname "$bin")")")
	printf 'x\n' > "$T/pw"
	"$bin" -r "$R" --password-file "$T/pw" init --kdf-passes 1 --kdf-memory 64 > /dev/null
	"$bin" -r "$R" --password-file "$T/pw" backup --mariadb "$URL/$DB" > /dev/null 2>&1
	"$bin" -r "$R" --password-file "$T/pw" dump latest "/mariadb/$DB.sql" > "$T/coffer.sql"
	measure "coffer restore ($(basename "$(dirname "$(dirname "$bin")")"))" "${DB}_c" \
		"$bin" -r "$R" --password-file "$T/pw" restore latest --mariadb "$URL" --rename "$DB=${DB}_c"
	measure "mariadb < coffer's dump ($(basename "$(dirname "$(dirname "$bin")")"))" "${DB}_s" \
		sh -c 'sed "s/^USE .*/USE \`'"${DB}_s"'\`;/; s/^CREATE DATABASE IF NOT EXISTS .*//" '"$T/coffer.sql"' | mariadb "$@" --comments' sh "${MDB_ARGS[@]}"
done

# Incremental: 1% of the rows, contiguous, grow by one byte; bytes the next
# backup adds (content-defined statement ends keep the rest of the dump as it was).
q "UPDATE $DB.t SET note = CONCAT(note, 'x') WHERE id > $ROWS / 2 AND id <= $ROWS / 2 + $ROWS / 100"
DUMPSIZE=$(stat -c %s "$T/coffer.sql")
for bin in "$(realpath "$COFFER")" ${COFFER_BASE:+"$(realpath "$COFFER_BASE")"}; do
	R=$T/repo-$(basename "$(dirname "$(dirname "$bin")")")
	"$bin" -r "$R" --password-file "$T/pw" --json backup --mariadb "$URL/$DB" 2> /dev/null | tail -1 > "$T/sum.json"
	python3 - "$T/sum.json" "$DUMPSIZE" "$(basename "$(dirname "$(dirname "$bin")")")" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
a = j.get("summary", j).get("data_added", 0)
print("1%% contiguous change (%s): backup added %.1f MiB = %.1f%% of the %.0f MiB dump"
      % (sys.argv[3], a / 1048576, 100.0 * a / int(sys.argv[2]), int(sys.argv[2]) / 1048576))
EOF
done
