"""txzserver.zope.firststart: a step that met another process's commit is run again.

A real ZODB (MappingStorage) with two connections stands for two processes: the other one
commits between our read and our commit, a real ConflictError follows. The race between real
processes on ZEO is tests/integration/test_first_start.py.
"""

import logging

import pytest
import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.POSException import ConflictError

from txzserver.zope import firststart


def add_once(db, other, name, tries):
    """Add ``name`` to the root unless there; the first try meets ``other``'s commit of it."""
    def step():
        tries.append(name)
        connection = db.open()
        try:
            root = connection.root()
            if name not in root:
                if len(tries) == 1:
                    other(name)
                root[name] = PersistentMapping(made_by="us")
                transaction.commit()
        finally:
            transaction.abort()
            connection.close()
    return step


def commit_from_another_connection(db):
    def other(name):
        manager = transaction.TransactionManager()
        connection = db.open(manager)
        connection.root()[name] = PersistentMapping(made_by="the other")
        manager.commit()
        connection.close()
    return other


def test_a_step_that_conflicts_is_retried_and_finds_the_other_commit(caplog):
    db = ZODB.DB(None)
    tries = []
    with caplog.at_level(logging.WARNING, "txzserver"):
        firststart.retry_on_conflict(add_once(db, commit_from_another_connection(db), "Application",
                                              tries), "the application object", first_wait=0.01)
    assert tries == ["Application", "Application"]
    connection = db.open()
    assert connection.root()["Application"]["made_by"] == "the other"
    connection.close()
    (record,) = caplog.records
    assert record.getMessage().startswith("first start: ConflictError on the application object "
                                          "(another process made it at the same time), try 1 of 10")
    db.close()


def test_a_zeo_server_busy_at_start_is_asked_again_when_told_so(caplog):
    """Opening the database passes ClientDisconnected (a server that accepted the connection
    but did not finish the handshake within wait-timeout); other steps do not."""
    from ZEO.Exceptions import ClientDisconnected
    tries = []

    def opens_on_the_second_try():
        tries.append(1)
        if len(tries) == 1:
            raise ClientDisconnected("timed out waiting for connection")
        return "opened"
    with caplog.at_level(logging.WARNING, "txzserver"):
        assert firststart.retry_on_conflict(opens_on_the_second_try, "the root of database 'main'",
                                            first_wait=0.001,
                                            errors=(ConflictError, ClientDisconnected)) == "opened"
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "first start: ClientDisconnected on the root of database 'main' (its server is busy")
    tries.clear()
    with pytest.raises(ClientDisconnected):
        firststart.retry_on_conflict(opens_on_the_second_try, "x", first_wait=0.001)


def test_the_last_try_raises():
    def always():
        raise ConflictError("always")
    with pytest.raises(ConflictError):
        firststart.retry_on_conflict(always, "x", attempts=3, first_wait=0.001)


def test_entries_a_retry_repeats_are_kept_once_and_repeats_within_a_try_stay():
    plone_tool = {"name": "Plone Tool", "product": "CMFPlone"}
    first = [{"name": "A"}, plone_tool, plone_tool]  # the try that met a conflict
    second = [{"name": "A"}, plone_tool, plone_tool, {"name": "B"}]  # products again, then more
    assert firststart._once([first, second]) == [{"name": "A"}, plone_tool, plone_tool, {"name": "B"}]
    assert firststart._once([first]) == first


def test_retrying_puts_zopes_own_functions_back():
    import App.ZApplication
    import OFS.Application
    from Zope2.Startup.datatypes import ZopeDatabase
    originals = (ZopeDatabase.open, App.ZApplication.ZApplicationWrapper.__init__,
                 OFS.Application.initialize)
    with firststart.retrying():
        assert OFS.Application.initialize is not originals[2]
    assert (ZopeDatabase.open, App.ZApplication.ZApplicationWrapper.__init__,
            OFS.Application.initialize) == originals
