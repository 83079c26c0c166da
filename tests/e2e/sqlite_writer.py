#!/usr/bin/env python3
"""Writer for tests/e2e/sqlite_replicate.sh: commits numbered transfer
transactions into DB (each moves 1 between two accounts of 100, so the sum
stays 100000) and logs, per transaction, the wall-clock time just before
BEGIN and just after COMMIT returned: "n start end" lines in LOG.

usage: sqlite_writer.py init DB
       sqlite_writer.py run DB LOG FIRST COUNT SLEEP_SECONDS [STOPFILE]
       sqlite_writer.py check DB LOG END [SLACK]
(with STOPFILE: stops before the next transaction once that file exists)

check: DB (a restore as of END, epoch seconds) passes integrity_check, keeps
the sum, holds transactions 1..k with no gap, none begun after END, and every
transaction whose COMMIT returned SLACK seconds (default 2) before END; prints
one line, exits 1 naming what is wrong.
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

def check(db, logf, end, slack):
    c = sqlite3.connect(db)
    ok = c.execute("pragma integrity_check").fetchone()[0]
    s = c.execute("select sum(bal) from acct").fetchone()[0]
    ns = [r[0] for r in c.execute("select n from log order by n")]
    log = {}
    for line in open(logf):
        n, t0, t1 = line.split()
        log[int(n)] = (float(t0), float(t1))
    k = len(ns)
    bad = []
    if ok != "ok": bad.append("integrity_check: %s" % ok)
    if s != 100000: bad.append("sum %s" % s)
    if ns != list(range(1, k + 1)): bad.append("not 1..k")
    late = [n for n in ns if log[n][0] > end]
    if late: bad.append("holds %d transactions begun after the time, first %d" % (len(late), late[0]))
    missing = [n for n, (t0, t1) in log.items() if t1 <= end - slack and n > k]
    if missing: bad.append("lacks %d transactions committed %.1f s before, first %d" % (len(missing), slack, min(missing)))
    print("restore as of %.3f: %d transactions%s" % (end, k, ("; " + "; ".join(bad)) if bad else ""))
    return 1 if bad else 0

if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(sys.argv[2])
    elif sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], float(sys.argv[4]),
                       float(sys.argv[5]) if len(sys.argv) > 5 else 2.0))
    else:
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]),
            sys.argv[7] if len(sys.argv) > 7 else None)
