"""txzserver.zope.zeopatches: a ZEO client forgets the oids the lost server handed out."""

from ZEO.ClientStorage import ClientStorage

from txzserver.zope import zeopatches


class _Server:
    def is_read_only(self):
        return False


def _client_with_prefetched_oids():
    """A ClientStorage as it is once connected and after new_oid() prefetched a batch."""
    client = object.__new__(ClientStorage)
    client.__name__ = "main"
    client._server_addr = ("127.0.0.1", 8100)
    client._connection_generation = 0
    client._server = _Server()
    client._iterator_gc = lambda disconnected=False: None
    client._oids = [b"\0" * 7 + bytes([n]) for n in range(100)]
    return client


def test_disconnection_drops_the_prefetched_oids():
    zeopatches.apply()
    try:
        client = _client_with_prefetched_oids()
        client.notify_disconnected()
        assert client._oids == []
        assert client._connection_generation == 1  # ZEO's own handling still ran
    finally:
        zeopatches.revert()


def test_apply_is_idempotent_and_revert_restores_zeo():
    original = ClientStorage.notify_disconnected
    zeopatches.apply()
    patched = ClientStorage.notify_disconnected
    zeopatches.apply()
    assert ClientStorage.notify_disconnected is patched is not original
    zeopatches.revert()
    assert ClientStorage.notify_disconnected is original
    client = _client_with_prefetched_oids()
    client.notify_disconnected()
    assert len(client._oids) == 100  # what ZEO itself does: the bug this module fixes
