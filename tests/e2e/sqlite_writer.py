#!/usr/bin/env python3
"""Writer for tests/e2e/sqlite_replicate.sh: commits numbered transfer
transactions into DB (each moves 1 between two accounts of 100, so the sum
stays 100000) and logs, per transaction, the wall-clock time just before
BEGIN and just after COMMIT returned: "n start end" lines in LOG.

usage: sqlite_writer.py init DB
       sqlite_writer.py run DB LOG FIRST COUNT SLEEP_SECONDS [STOPFILE]
(with STOPFILE: stops before the next transaction once that file exists)
"""
import os
import random
import sqlite3
import sys
import time

def init(db):
    c = sqlite3.connect(db)
    c.execute("pragma journal_mode=wal")
    c.execute("create table acct(id integer primary key, bal integer not null)")
    c.execute("create table log(n integer primary key, pad text)")
    c.executemany("insert into acct values(?,?)", [(i, 1000) for i in range(100)])
    c.commit()
    c.close()

def run(db, logf, first, count, pause, stop=None):
    c = sqlite3.connect(db, isolation_level=None, timeout=30)
    rnd = random.Random(first)
    with open(logf, "a", buffering=1) as log:
        for n in range(first, first + count):
            if stop and os.path.exists(stop):
                break
            a, b = rnd.sample(range(100), 2)
            t0 = time.time()
            c.execute("begin immediate")
            c.execute("update acct set bal=bal-1 where id=?", (a,))
            c.execute("update acct set bal=bal+1 where id=?", (b,))
            c.execute("insert into log values(?,?)", (n, "x" * rnd.randrange(10, 3000)))
            c.execute("commit")
            t1 = time.time()
            log.write("%d %.6f %.6f\n" % (n, t0, t1))
            if pause:
                time.sleep(pause)
    c.close()

if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(sys.argv[2])
    else:
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]),
            sys.argv[7] if len(sys.argv) > 7 else None)
