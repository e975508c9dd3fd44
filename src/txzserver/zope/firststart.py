"""Zope's first start on an empty database, when other processes make the same start at once.

Zope's startup makes the database root, the application object and the application's standard
contents (``OFS.Application.initialize``: the initial user, the products' objects such as
``browser_id_manager``, ``virtual_hosting``, ``index_html``) in small transactions of its own.
Processes starting together on an empty ZEO or RelStorage database (a new Kubernetes
deployment: instances and the site Job) make them at the same time; every process but the
first to commit got a ``ConflictError`` on the root (oid 0) or the application (oid 1) and
exited (2 of 3 processes started at once on a new ZEO, each time we tried). While Zope starts
(``retrying()``, used by ``startup.start_zope``), each of those steps is retried after an
abort, with a doubling, jittered wait, and logged. Each step looks first for what it would make,
so a retry finds what the other process committed and leaves it as it is.
Opening the database is also retried when a ZEO server that accepts connections does not finish
the client's handshake within ``wait-timeout`` (the image's 1 s, meant for requests): a server
busy with the other processes' first starts (seen in the Kubernetes smoke test: an instance
crashed twice on ClientDisconnected at start, on a quiet machine).
Test: tests/integration/test_first_start.py.
"""

import contextlib
import functools
import logging
import random
import time

import App.ZApplication
import OFS.Application
import Products
import transaction
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError
from Zope2.Startup.datatypes import ZopeDatabase

log = logging.getLogger("txzserver")

#: tries per step; the waits double from FIRST_WAIT up to MAX_WAIT (at most 26 s in all), far
#: longer than another process's first start needs for the same few commits
ATTEMPTS = 10
FIRST_WAIT = 0.2
MAX_WAIT = 5.0


def retry_on_conflict(step, what, attempts=ATTEMPTS, first_wait=FIRST_WAIT, max_wait=MAX_WAIT,
                      errors=(ConflictError,)):
    """``step()`` again after one of ``errors`` (a ConflictError by default; the transaction
    aborted, a jittered wait); the last try's error is raised."""
    wait = first_wait
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except errors as error:
            transaction.abort()
            if attempt == attempts:
                raise
            pause = random.uniform(wait / 2, wait)  # processes that collided do not meet again
            why = ("another process made it at the same time" if isinstance(error, ConflictError)
                   else "its server is busy with other processes' starts")
            log.warning("first start: %s on %s (%s), try %d of %d, retrying in %.1f s: %s",
                        type(error).__name__, what, why, attempt, attempts, pause, error)
            time.sleep(pause)
            wait = min(wait * 2, max_wait)


def _open_database(open_database):
    """``ZopeDatabase.open``: ZODB.DB makes the root mapping (oid 0) when there is none."""
    @functools.wraps(open_database)
    def wrapper(self, database_name, databases):
        def step():
            try:
                return open_database(self, database_name, databases)
            except ConflictError:
                # the failed DB entered itself in ``databases`` (ZODB closed its storage)
                databases.pop(database_name, None)
                raise
        return retry_on_conflict(step, f"the root of database {database_name!r}",
                                 errors=(ConflictError, ClientDisconnected))
    return wrapper


def _application_wrapper(init):
    """``ZApplicationWrapper.__init__`` adds the application object (oid 1) to the root
    when it is missing; it is added here first, retried, on a connection that is closed
    whatever happens (Zope's own stays open after a failed commit)."""
    @functools.wraps(init)
    def wrapper(self, db, name, klass=None):
        if klass is not None:
            retry_on_conflict(lambda: _add_to_root(db, name, klass), "the application object")
        init(self, db, name, klass)  # finds it: commits nothing
    return wrapper


def _add_to_root(db, name, klass):
    manager = transaction.TransactionManager()
    connection = db.open(manager)
    try:
        root = connection.root()
        if name not in root:
            root[name] = klass()
            manager.commit()
    finally:
        manager.abort()
        connection.close()


def _initialize(initialize):
    """``OFS.Application.initialize``: every step checks before it adds, so the whole is run
    again. A product's registration appends to ``Products.meta_types`` (the ZMI's add list)
    again when its ``initialize`` runs again: the entries a retry repeats are kept once."""
    @functools.wraps(initialize)
    def wrapper(app):
        before = Products.meta_types
        tries = []

        def step():
            start = len(Products.meta_types)
            try:
                return initialize(app)
            finally:
                tries.append(Products.meta_types[start:])
        try:
            return retry_on_conflict(step, "the application object's contents")
        finally:
            Products.meta_types = before + tuple(_once(tries))
    return wrapper


def _once(tries):
    """The entries each try added, less those an earlier try added (Plone's own repeated
    entries, added twice by one try, stay twice)."""
    kept = []
    for added in tries:
        earlier = list(kept)
        for entry in added:
            if entry in earlier:
                earlier.remove(entry)
            else:
                kept.append(entry)
    return kept


@contextlib.contextmanager
def retrying():
    """Zope's first-start steps retried on ConflictError within the block."""
    originals = (ZopeDatabase.open, App.ZApplication.ZApplicationWrapper.__init__,
                 OFS.Application.initialize)
    ZopeDatabase.open = _open_database(originals[0])
    App.ZApplication.ZApplicationWrapper.__init__ = _application_wrapper(originals[1])
    OFS.Application.initialize = _initialize(originals[2])
    try:
        yield
    finally:
        (ZopeDatabase.open, App.ZApplication.ZApplicationWrapper.__init__,
         OFS.Application.initialize) = originals
