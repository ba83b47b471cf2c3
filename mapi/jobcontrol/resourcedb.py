"""The resource database: mapid's record of principals, revocations, the reservations each
request made (with their dependencies: a loaded library and the flows that apply its
functions), and an audit log of every authorisation decision.

SQLite (stdlib sqlite3) in WAL mode, by default /var/lib/scampi/mapid.db.  Reservations (a
flow's amounts as of its connect), refusals and the allowed decisions of calls that change
something are committed before the call is answered, so they survive mapid being killed (-9): a
decision queued for the audit log goes into the transaction of the next write, never a commit
of its own.  Allowed decisions of calls that only read are committed by a writer thread within
AUDIT_DELAY seconds (a kill -9 may lose that last fraction of a second of reads).
A starting mapid drops the reservations of server instances that are gone (with them their
clients) and keeps principals, revocations and the audit log."""
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid

from mapi.errors import MapiError, EOPEN

log = logging.getLogger("mapid.jobs.db")
DEFAULT_PATH = "/var/lib/scampi/mapid.db"
AUDIT_DELAY = 0.2
# the writer thread moves committed pages from the WAL into the database (a checkpoint, which
# syncs to disk) at most this often; a call's commit only appends to the WAL, so it never waits
# for a sync on a busy disk (SQLite's own checkpoint would run inside every 300th commit or so)
CHECKPOINT_S = 1.0
INSERT_AUDIT = ("INSERT INTO audit(ts, client, principal, uid, pid, operation, object, decision, "
                "code, reason) VALUES (?,?,?,?,?,?,?,?,?,?)")
SCHEMA = """
CREATE TABLE IF NOT EXISTS principals(name TEXT PRIMARY KEY, source TEXT, rights TEXT,
    first_seen REAL, last_seen REAL);
CREATE TABLE IF NOT EXISTS revocations(token_id TEXT PRIMARY KEY, source TEXT, since REAL,
    note TEXT);
CREATE TABLE IF NOT EXISTS servers(instance TEXT PRIMARY KEY, pid INTEGER, starttime TEXT,
    started REAL, stopped REAL);
CREATE TABLE IF NOT EXISTS clients(client TEXT PRIMARY KEY, instance TEXT, pid INTEGER,
    uid INTEGER, program TEXT, principal TEXT, connected REAL, gone REAL);
CREATE TABLE IF NOT EXISTS reservations(id INTEGER PRIMARY KEY AUTOINCREMENT, client TEXT,
    principal TEXT, levels TEXT, kind TEXT, object TEXT, device TEXT, amounts TEXT,
    depends_on INTEGER REFERENCES reservations(id) ON DELETE CASCADE, created REAL);
CREATE INDEX IF NOT EXISTS reservations_client ON reservations(client);
-- the delete's ON DELETE CASCADE looks up the dependents: without this index every release
-- read every reservation
CREATE INDEX IF NOT EXISTS reservations_depends ON reservations(depends_on);
CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, client TEXT,
    principal TEXT, uid INTEGER, pid INTEGER, operation TEXT, object TEXT, decision TEXT,
    code INTEGER, reason TEXT);
CREATE TABLE IF NOT EXISTS calibration(class TEXT PRIMARY KEY, ns_per_packet REAL,
    function TEXT, measured REAL);
"""


def _starttime(pid):
    """A process's start time (field 22 of /proc/PID/stat): with the pid, it names a process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def connect(path, readonly=False):
    if readonly:
        if not os.path.exists(path):
            raise MapiError(EOPEN, "no resource database at %s (has mapid run with it?)" % path,
                            file=path)
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    else:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o750, exist_ok=True)
            db = sqlite3.connect(path, timeout=10, check_same_thread=False,
                                 isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise MapiError(EOPEN, "cannot open the resource database %s: %s (set "
                            "jobcontrol.database in mapid's config)" % (path, exc),
                            file=path) from None
    db.row_factory = sqlite3.Row
    return db


class ResourceDB:
    def __init__(self, path):
        self.path = path
        self.db = connect(path)
        self.db.execute("PRAGMA wal_autocheckpoint=0")     # the writer thread checkpoints
        self.commits = 0
        self.checkpoints = 0
        self.checkpointed = 0               # the commits the last checkpoint covered
        self.lock = threading.Lock()
        self.instance = uuid.uuid4().hex[:12]
        self._audit = []
        self._audit_cv = threading.Condition()
        self._stopping = False
        dropped = self._start()
        self._writer = threading.Thread(target=self._audit_writer, name="mapid-audit", daemon=True)
        self._writer.start()
        self.dropped_at_start = dropped

    @contextlib.contextmanager
    def _tx(self):
        """One transaction (one commit) holding the queued audit rows first, then the caller's
        writes.  (The connection is in autocommit mode: without BEGIN each statement, each row
        of an executemany too, would be a commit of its own.)"""
        with self._audit_cv:
            rows, self._audit = self._audit, []
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if rows:
                    self.db.executemany(INSERT_AUDIT, rows)
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            self.commits += 1

    # --- start and stop ------------------------------------------------------------------------
    def _start(self):
        """Register this server; drop what belonged to server instances that are gone."""
        pid = os.getpid()
        with self._tx():
            gone = [r["instance"] for r in self.db.execute(
                "SELECT instance, pid, starttime FROM servers WHERE stopped IS NULL")
                if _starttime(r["pid"]) != r["starttime"] or r["pid"] == pid]
            dropped = 0
            for inst in gone:
                dropped += self.db.execute(
                    "DELETE FROM reservations WHERE client IN (SELECT client FROM clients "
                    "WHERE instance = ?)", (inst,)).rowcount
                self.db.execute("UPDATE clients SET gone = ? WHERE instance = ? AND gone IS NULL",
                                (time.time(), inst))
                self.db.execute("UPDATE servers SET stopped = ? WHERE instance = ?",
                                (time.time(), inst))
            self.db.execute("INSERT INTO servers VALUES (?, ?, ?, ?, NULL)",
                            (self.instance, pid, _starttime(pid), time.time()))
        if dropped:
            log.info("resource database %s: dropped %d reservations of clients of an earlier "
                     "mapid", self.path, dropped)
        return dropped

    def close(self):
        self.flush()
        with self._audit_cv:
            self._stopping = True
            self._audit_cv.notify()
        self._writer.join(2)
        with self._tx():
            self.db.execute("DELETE FROM reservations WHERE client IN (SELECT client FROM clients "
                            "WHERE instance = ?)", (self.instance,))
            self.db.execute("UPDATE servers SET stopped = ? WHERE instance = ?",
                            (time.time(), self.instance))
        self.db.close()

    # --- principals and revocations ------------------------------------------------------------
    def see_principal(self, name, source, rights):
        now = time.time()
        with self._tx():
            self.db.execute("INSERT INTO principals VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO "
                            "UPDATE SET source = excluded.source, rights = excluded.rights, "
                            "last_seen = excluded.last_seen",
                            (name, source, json.dumps(rights), now, now))

    def principals(self):
        with self.lock:
            return [dict(r) for r in self.db.execute("SELECT * FROM principals ORDER BY name")]

    def set_config_revocations(self, ids):
        """The config's list replaces the earlier config entries; `mapi-admin revoke` entries stay."""
        with self._tx():
            self.db.execute("DELETE FROM revocations WHERE source = 'config'")
            self.db.executemany("INSERT OR IGNORE INTO revocations VALUES (?, 'config', ?, '')",
                                [(i.lower(), time.time()) for i in ids])

    def revocations(self):
        with self.lock:
            return {r[0] for r in self.db.execute("SELECT token_id FROM revocations")}

    def data_version(self):
        """Changes when another connection (mapi-admin revoke) wrote the database."""
        with self.lock:
            return self.db.execute("PRAGMA data_version").fetchone()[0]

    # --- clients and reservations ----------------------------------------------------------------
    def client_key(self, client_id):
        return "%s/%d" % (self.instance, client_id)

    def add_client(self, key, pid, uid, program, principal):
        with self._tx():
            self.db.execute("INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT"
                            "(client) DO UPDATE SET principal = excluded.principal",
                            (key, self.instance, pid, uid, program, principal, time.time()))

    def client_gone(self, key):
        with self._tx():
            self.db.execute("DELETE FROM reservations WHERE client = ?", (key,))
            self.db.execute("UPDATE clients SET gone = ? WHERE client = ?", (time.time(), key))

    def reserve(self, client, principal, levels, kind, obj, device, amounts, depends_on=None):
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO reservations(client, principal, levels, kind, object, device, "
                "amounts, depends_on, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (client, principal, json.dumps(levels), kind, obj, device, json.dumps(amounts),
                 depends_on, time.time()))
            return cur.lastrowid

    def update_amounts(self, rid, amounts, depends_on=None):
        with self._tx():
            self.db.execute("UPDATE reservations SET amounts = ?, depends_on = ? WHERE id = ?",
                            (json.dumps(amounts), depends_on, rid))

    def release(self, rid):
        with self._tx():
            self.db.execute("DELETE FROM reservations WHERE id = ?", (rid,))

    def reservations(self):
        return reservations(self.db, self.lock)

    # --- audit ----------------------------------------------------------------------------------
    def audit(self, row, sync=False):
        """row: (ts, client, principal, uid, pid, operation, object, decision, code, reason).
        Queued: committed with the next write, or by the writer thread; sync: now."""
        with self._audit_cv:
            self._audit.append(row)
            if len(self._audit) == 1:
                self._audit_cv.notify()
        if sync:
            self.flush()

    def flush(self):
        """Commit the queued audit rows (nothing when another write took them)."""
        with self._audit_cv:
            if not self._audit:
                return
        with self._tx():
            pass

    def _audit_writer(self):
        self.checkpointed = self.commits
        last_checkpoint = time.monotonic()
        ckpt = None                         # its own connection: no wait for self.lock
        try:
            while True:
                with self._audit_cv:
                    if not self._audit and not self._stopping:
                        self._audit_cv.wait(CHECKPOINT_S)
                    if self._stopping and not self._audit:
                        return
                    audit = bool(self._audit)
                try:
                    if audit:
                        time.sleep(AUDIT_DELAY)
                        self.flush()
                    now = time.monotonic()
                    if self.commits != self.checkpointed and now - last_checkpoint >= CHECKPOINT_S:
                        self.checkpointed, last_checkpoint = self.commits, now
                        if ckpt is None:
                            ckpt = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                        # PASSIVE: writers go on appending to the WAL meanwhile
                        ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        self.checkpoints += 1
                except sqlite3.Error as exc:
                    log.error("audit log: %s", exc)
        finally:
            if ckpt is not None:
                ckpt.close()

    # --- calibration ----------------------------------------------------------------------------
    def save_calibration(self, costs, functions):
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO calibration VALUES (?, ?, ?, ?)",
                                [(c, ns, functions.get(c, ""), time.time())
                                 for c, ns in costs.items()])


# --- reading (mapi-admin) -------------------------------------------------------------------------
def reservations(db, lock=None):
    """Live reservations with their client and dependencies, oldest first."""
    sql = ("SELECT r.id, r.client, r.principal, r.kind, r.object, r.device, r.amounts, "
           "r.depends_on, r.created, c.pid, c.uid, c.program FROM reservations r LEFT JOIN "
           "clients c ON c.client = r.client ORDER BY r.id")
    if lock is None:
        return [dict(r) for r in db.execute(sql)]
    with lock:
        return [dict(r) for r in db.execute(sql)]


def audit_rows(db, limit=50, principal=None, decision=None):
    where, args = [], []
    if principal:
        where.append("principal = ?")
        args.append(principal)
    if decision:
        where.append("decision = ?")
        args.append(decision)
    sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + \
        " ORDER BY id DESC LIMIT ?"
    return [dict(r) for r in db.execute(sql, args + [limit])][::-1]
