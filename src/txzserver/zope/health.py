"""The ZODB side of the readiness probe (``DatabaseCheck`` in server/health.py).

``disconnected`` is asked on the reactor at every probe: it only reads the flag a ZEO
ClientStorage keeps (``is_connected()``), so a lost ZEO server fails readiness at once.
``probe`` runs in a thread of its own every few seconds: it asks RelStorage's server
(``ask_server``), opens a connection to the main database and reads the application root (a
FileStorage answers from its file), and checks that the site exists.
"""

import transaction
import Zope2
from ZODB.interfaces import IMVCCStorage


def databases():
    """{name: ZODB.DB} of the databases Zope opened (the main one and its mounts)."""
    db = getattr(Zope2, "DB", None)
    if db is None:
        return {}
    return dict(getattr(db, "databases", None) or {"main": db})


def disconnected():
    """Names of the databases whose storage knows it has lost its server (ZEO). Cheap."""
    down = []
    for name, db in sorted(databases().items()):
        is_connected = getattr(db.storage, "is_connected", None)
        if is_connected is not None and not is_connected():
            down.append(name)
    return down


def ask_server(storage):
    """One round trip to the server of an IMVCCStorage (RelStorage: a poll of PostgreSQL)
    on an instance of its own: raises when the server is lost. Not through a connection of
    the pool: a connection whose opening fails is dropped from the pool with its cache, and
    those caches are what the pages served during an outage come from."""
    if not IMVCCStorage.providedBy(storage):
        return
    instance = storage.new_instance()
    try:
        instance.poll_invalidations()
    finally:
        instance.release()


def make_probe(site_id=None):
    """A function that opens a connection, reads the root and finds ``site_id`` (if given);
    it returns details for the probe's answer or raises. Not for the reactor thread."""

    def probe():
        db = getattr(Zope2, "DB", None)
        if db is None:
            raise RuntimeError("Zope has not opened its database")
        ask_server(db.storage)
        manager = transaction.TransactionManager()
        connection = db.open(transaction_manager=manager)
        try:
            application = connection.root()["Application"]
            details = {"databases": sorted(databases())}
            if site_id:
                if site_id not in application.objectIds():
                    raise LookupError(f"no site {site_id!r} in the database")
                details["site"] = site_id
            return details
        finally:
            manager.abort()
            connection.close()

    return probe
