"""A fix to ZEO's ClientStorage, applied once by ``startup.start_zope`` (idempotent).

After a ZEO server restart, ClientStorage kept the new object ids it had fetched from the old
server (``_oids``, 100 at a time) across the reconnection. The restarted server, which only
knows committed oids, handed the same ones out again to other clients, and commits failed with
``ValueError: A different object already has the same oid`` until the instance was restarted
(seen by ``tests/smoke/test_faults.py::test_zeo_restart_under_load``; nothing committed was
lost, a colliding store is refused). Here the list is dropped when the connection is lost, so
new oids come from the server the client reconnects to. Tested by ``tests/unit/test_zeopatches.py``.
"""

import functools

from ZEO.ClientStorage import ClientStorage

_ORIGINALS = {}


def _forget_prefetched_oids(notify_disconnected):
    @functools.wraps(notify_disconnected)
    def wrapper(self):
        del self._oids[:]  # handed out by the server we lost; it may hand them out again
        return notify_disconnected(self)
    return wrapper


def apply():
    """Install the fix (once)."""
    if "notify_disconnected" not in _ORIGINALS:
        _ORIGINALS["notify_disconnected"] = ClientStorage.notify_disconnected
        ClientStorage.notify_disconnected = _forget_prefetched_oids(ClientStorage.notify_disconnected)


def revert():
    """Restore ZEO's own behaviour (tests)."""
    if "notify_disconnected" in _ORIGINALS:
        ClientStorage.notify_disconnected = _ORIGINALS.pop("notify_disconnected")
