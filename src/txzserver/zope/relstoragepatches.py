"""A change to RelStorage, applied once by ``storagedown.guard`` (idempotent): pages whose
objects are in the ZODB caches are served while PostgreSQL is down.

RelStorage polls PostgreSQL when a ZODB connection starts a transaction; with the server gone
the poll raised and no page could be served, not even one whose objects were all in the
connection's cache. And a connection whose opening fails is dropped from the pool with its
cache: every failed request emptied one. Here, when ``tolerate()`` says so (storagedown: the
thread publishes a request), a poll that meets a lost server (the driver's
``disconnected_exceptions``) answers "nothing changed": the transaction reads the snapshot it
had, as a ZEO client reads its cache while disconnected. A load the caches cannot answer
still fails (the server is down), and so does a commit; were the server back by then, every
object a commit writes is checked against the current state (a write from an old snapshot
is a ConflictError, retried by Zope). The readiness probe and scripts get RelStorage's own
error. The first poll that works again returns every change made since the last one that
worked. Tested by tests/integration/test_degraded.py.
"""

import functools
import logging

log = logging.getLogger("txzserver.storage")

_ORIGINALS = {}


def _keep_snapshot_while_down(poll_invalidations, tolerate):
    @functools.wraps(poll_invalidations)
    def wrapper(self):
        try:
            return poll_invalidations(self)
        except self._adapter.driver.disconnected_exceptions as exc:
            if not tolerate():
                raise
            log.debug("RelStorage poll failed, reading the last snapshot: %s", exc)
            return {}
    return wrapper


def apply(tolerate):
    """Install the change (once); nothing when RelStorage is not installed. ``tolerate()``
    (called in the thread that polls) -> whether a failed poll may keep the last snapshot."""
    try:
        from relstorage.storage import RelStorage
    except ImportError:
        return
    if "poll_invalidations" not in _ORIGINALS:
        _ORIGINALS["poll_invalidations"] = RelStorage.poll_invalidations
        RelStorage.poll_invalidations = _keep_snapshot_while_down(RelStorage.poll_invalidations,
                                                                  tolerate)


def revert():
    """Restore RelStorage's own behaviour (tests)."""
    if "poll_invalidations" in _ORIGINALS:
        from relstorage.storage import RelStorage
        RelStorage.poll_invalidations = _ORIGINALS.pop("poll_invalidations")
