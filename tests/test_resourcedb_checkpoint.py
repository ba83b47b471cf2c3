"""The resource database's writer thread moves the WAL into the database (a checkpoint, which
syncs to disk) at most once per CHECKPOINT_S, however many calls commit meanwhile, and still
checkpoints what the last commits wrote once they stop."""
import os
import sqlite3
import time

from mapi.jobcontrol import resourcedb
from mapi.jobcontrol.resourcedb import ResourceDB


def row(i):
    return (time.time(), "c/1", "tester", 0, os.getpid(), "apply_function", "flow %d" % i,
            "allow", 0, "")


def test_checkpoints_at_most_once_per_interval(tmp_path):
    db = ResourceDB(str(tmp_path / "mapid.db"))
    try:
        t0 = time.monotonic()
        n = 0
        # a call every 5 ms for 1.5 s, each committing its audit row before it answers (as a
        # durable call does): over two hundred commits, far more than the AUDIT_DELAY writes
        while time.monotonic() - t0 < 1.5:
            db.audit(row(n), sync=True)
            n += 1
            time.sleep(0.005)
        elapsed = time.monotonic() - t0
        assert db.commits >= n
        assert db.checkpoints <= elapsed / resourcedb.CHECKPOINT_S + 1, \
            "%d checkpoints in %.2f s" % (db.checkpoints, elapsed)
        # once the commits stop, what they wrote is still moved into the database
        deadline = time.monotonic() + 10
        while db.checkpointed != db.commits:
            assert time.monotonic() < deadline, "no checkpoint after the last commit"
            time.sleep(0.05)
    finally:
        db.close()
    con = sqlite3.connect(str(tmp_path / "mapid.db"))
    assert con.execute("SELECT count(*) FROM audit WHERE operation = 'apply_function'"
                       ).fetchone()[0] == n

