"""The ZODB guard of txzserver.zope.upgradelock on a real in-memory ZODB (MappingStorage, which
detects write conflicts as ZEO and FileStorage do): two connections with transaction managers
of their own are two upgrade runs. The PostgreSQL advisory lock and the whole command run in
tests/integration/test_upgrade.py."""

import threading
import time

import pytest
import transaction
import ZODB
from ZODB.MappingStorage import MappingStorage
from ZODB.POSException import ConflictError

from txzserver.zope.upgradelock import (
    MARKER, LockError, ZodbGuard, is_relstorage, this_process, upgrade_lock)


@pytest.fixture
def db():
    database = ZODB.DB(MappingStorage())
    yield database
    database.close()


def run_of(db, name, logged, **kwargs):
    connection = db.open(transaction_manager=transaction.TransactionManager())
    return ZodbGuard(connection, logged.append, holder=name, **kwargs)


def test_a_second_run_waits_for_the_marker_and_gives_up_after_its_timeout(db):
    logged = []
    first, second = run_of(db, "run-1", logged), run_of(db, "run-2", logged)
    assert first.acquire(timeout=5) is False
    started = time.monotonic()
    with pytest.raises(LockError, match="still held by run-1 after 0.3 s"):
        second.acquire(timeout=0.3, poll=0.05)
    assert time.monotonic() - started >= 0.3
    assert logged[0].startswith(f"waiting for the upgrade lock (ZODB marker {MARKER!r}, held by run-1")


def test_the_second_run_goes_on_once_the_first_commits_its_release(db):
    logged, result = [], {}
    first = run_of(db, "run-1", logged)
    first.acquire(timeout=5)

    def second_run():
        second = run_of(db, "run-2", logged)  # its connection belongs to this thread
        result["waited"] = second.acquire(timeout=30, poll=0.02)
        result["holder"] = second._marker()["holder"]

    thread = threading.Thread(target=second_run)
    thread.start()
    deadline = time.monotonic() + 30
    while not logged:  # the second run is waiting
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "holder" not in result
    first.clear()  # the upgrade's own commit releases it
    first.transactions.commit()
    thread.join(30)
    assert result == {"waited": True, "holder": "run-2"}


def test_two_markers_written_at_once_conflict(db):
    """What the guard rests on: the later of two concurrent writes of the marker fails."""
    logged = []
    first, second = run_of(db, "run-1", logged), run_of(db, "run-2", logged)
    for run in (first, second):
        run.transactions.abort()
        assert run._marker() is None
    first._write("run-1", time.time())
    second._write("run-2", time.time())
    first.transactions.commit()
    with pytest.raises(ConflictError):
        second.transactions.commit()
    second.transactions.abort()
    with pytest.raises(LockError, match="held by run-1"):
        second.acquire(timeout=0.1, poll=0.02)


def test_a_stale_marker_is_taken_over(db):
    logged, now = [], [1000.0]
    first = run_of(db, "run-1", logged, clock=lambda: now[0])
    first.acquire(timeout=5)
    now[0] += 7201
    second = run_of(db, "run-2", logged, clock=lambda: now[0])
    assert second.acquire(timeout=1) is False
    assert logged == ["taking over the upgrade lock of run-1: held for 7201 s, more than 7200 s "
                      "(a run that was killed)"]
    assert second._marker()["holder"] == "run-2"


def test_release_clears_only_this_runs_marker(db):
    logged = []
    first, second = run_of(db, "run-1", logged), run_of(db, "run-2", logged)
    first.acquire(timeout=5)
    second.release()
    second.transactions.abort()
    assert second._marker()["holder"] == "run-1"
    first.release()
    second.transactions.abort()
    assert second._marker()["holder"] is None
    assert second.acquire(timeout=1) is False


def test_upgrade_lock_uses_the_zodb_guard_off_relstorage_and_releases_on_error(db):
    connection = db.open(transaction_manager=transaction.TransactionManager())
    assert not is_relstorage(db)
    with pytest.raises(RuntimeError):
        with upgrade_lock(connection, print, timeout=1) as held:
            assert held.waited is False
            assert connection.root()[MARKER]["holder"] == this_process()
            raise RuntimeError("a step failed")
    connection.transaction_manager.abort()
    assert connection.root()[MARKER]["holder"] is None
