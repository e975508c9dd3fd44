"""One Plone upgrade run at a time on a database (the plone image's `upgrade` command).

Two runs at once (a Job retried while its first pod still runs, two operators, a Job of each of
two image versions) must not both run the upgrade steps: a step that is not idempotent would be
applied twice, and the loser's work is thrown away by a ConflictError only after it ran.

- RelStorage: a PostgreSQL session-level advisory lock on ``LOCK_KEY``, on a connection of its
  own, taken before the site is read and held until the upgrade has committed. PostgreSQL
  releases it when that connection ends, so a killed run leaves nothing behind.
- ZEO and FileStorage: a marker (``root[MARKER]``: holder and time) committed before the steps
  run. A second run finds it held and waits; two runs writing it at once conflict, and the
  loser retries and finds it held. The upgrade's own commit clears it. A run killed before it
  cleared the marker leaves it: it is taken over after ``stale_after`` seconds.
"""

import os
import socket
import time
from contextlib import contextmanager

from ZODB.POSException import ConflictError

#: The advisory lock's key (a signed 64-bit integer: "txupgrad" in ASCII); the same in every
#: version of the image, so that runs of an old and a new image exclude each other.
LOCK_KEY = 0x7478_7570_6772_6164
#: The ZODB root key of the marker.
MARKER = "txzserver.upgrade"
# the server processes holding the lock: a bigint key is split into classid (high 32 bits) and
# objid (low 32 bits), objsubid 1
HOLDERS = ("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
           "AND classid::bigint = (%(key)s::bigint >> 32) "
           "AND objid::bigint = (%(key)s::bigint & 4294967295)")


class LockError(Exception):
    """The lock could not be had: another run held it for longer than this one would wait, or
    RelStorage without RELSTORAGE_DSN."""


class LockWait:
    """One run's wait for a lock another run holds: says once who holds it, looks again every
    ``poll`` seconds, gives up with LockError after ``timeout`` seconds."""

    def __init__(self, timeout, poll, log):
        self.deadline = time.monotonic() + timeout
        self.timeout, self.poll, self.log = timeout, poll, log
        self.waited, self.who = False, None

    def held(self, lock, who, detail=""):
        """``lock`` (what it is) is held by ``who()`` (asked once): wait before looking again."""
        if not self.waited:
            self.who = who()
            self.log(f"waiting for the upgrade lock ({lock}, held by {self.who}{detail})")
            self.waited = True
        if time.monotonic() > self.deadline:
            raise LockError(f"the upgrade lock ({lock}) is still held by {self.who} after {self.timeout:g} s")
        time.sleep(self.poll)


def this_process():
    """How a holder is named in the marker and the log: host (the pod) and process id."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def is_relstorage(db):
    """True when ``db`` stores in RelStorage (its advisory lock then applies)."""
    return type(db.storage).__module__.startswith("relstorage.")


@contextmanager
def advisory_lock(dsn, timeout, log, poll=1.0):
    """Hold PostgreSQL's advisory lock ``LOCK_KEY`` inside the block; yields True when this run
    had to wait for another. Raises LockError after ``timeout`` seconds of waiting."""
    import psycopg2
    connection = psycopg2.connect(dsn, connect_timeout=10)
    connection.autocommit = True
    try:
        wait = LockWait(timeout, poll, log)
        with connection.cursor() as cursor:
            def holder():
                cursor.execute(HOLDERS, {"key": LOCK_KEY})
                return "server process " + (", ".join(str(row[0]) for row in cursor.fetchall()) or "?")

            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                if cursor.fetchone()[0]:
                    break
                wait.held(f"PostgreSQL advisory lock {LOCK_KEY}", holder)
        yield wait.waited
    finally:
        connection.close()  # ends the session: PostgreSQL releases the lock


class ZodbGuard:
    """The marker in ``connection``'s root. Uses the connection's transaction manager: call
    from the thread that owns the connection."""

    def __init__(self, connection, log, holder=None, stale_after=7200.0, clock=time.time):
        self.connection = connection
        self.transactions = connection.transaction_manager
        self.log = log
        self.holder = holder or this_process()
        self.stale_after = stale_after
        self.clock = clock

    def _marker(self):
        return self.connection.root().get(MARKER)

    def acquire(self, timeout, poll=1.0):
        """Commit this run's marker; wait while another run's (not stale) marker is there.
        Returns True when this run waited. Raises LockError after ``timeout`` seconds."""
        wait = LockWait(timeout, poll, self.log)
        while True:
            self.transactions.abort()  # a fresh view of the database
            marker = self._marker()
            holder = marker.get("holder") if marker is not None else None
            if holder and holder != self.holder:
                age = self.clock() - marker["since"]
                if age < self.stale_after:
                    wait.held(f"ZODB marker {MARKER!r}", lambda: holder, f" for {age:.0f} s")
                    continue
                self.log(f"taking over the upgrade lock of {holder}: held for {age:.0f} s, "
                         f"more than {self.stale_after:g} s (a run that was killed)")
            try:
                self._write(self.holder, self.clock())
                self.transactions.get().note(f"upgrade lock taken by {self.holder}")
                self.transactions.commit()
                return wait.waited
            except ConflictError:  # another run wrote its marker first: look again
                self.transactions.abort()

    def clear(self):
        """Clear the marker in the current transaction (the upgrade's own commit)."""
        self._write(None, self.clock())

    def release(self):
        """Clear the marker in a transaction of its own unless another run holds it now."""
        for _attempt in range(5):
            self.transactions.abort()
            marker = self._marker()
            if marker is None or marker.get("holder") != self.holder:
                return
            try:
                self.clear()
                self.transactions.commit()
                return
            except ConflictError:
                self.transactions.abort()

    def _write(self, holder, since):
        from persistent.mapping import PersistentMapping
        root = self.connection.root()
        if root.get(MARKER) is None:
            root[MARKER] = PersistentMapping()
        root[MARKER].update(holder=holder, since=since)


@contextmanager
def upgrade_lock(connection, log, timeout, stale_after=7200.0, dsn=None):
    """The lock that fits the database of ``connection``: yields an object whose ``waited`` says
    whether another run held it first and whose ``clear()`` adds the release to the current
    transaction (the ZODB marker; nothing for the advisory lock, released after the block)."""
    if is_relstorage(connection.db()):
        if not dsn:
            raise LockError("RelStorage: the upgrade lock needs RELSTORAGE_DSN")
        with advisory_lock(dsn, timeout, log) as waited:
            yield _Held(waited, lambda: None)
        return
    guard = ZodbGuard(connection, log, stale_after=stale_after)
    waited = guard.acquire(timeout)
    try:
        yield _Held(waited, guard.clear)
    finally:
        guard.release()


class _Held:
    def __init__(self, waited, clear):
        self.waited = waited
        self.clear = clear
