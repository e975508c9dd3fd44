"""txzserver.zope.storagedown and relstoragepatches without Zope running: the WriteGuard on a
WSGI app of the test's own, which databases count as down, Zope's retries turned off while
one is, ZEO's wait for a lost server cut short,
and RelStorage's poll keeping its snapshot only inside a request. (ZEO's wait cut short on a
real ClientStorage: tests/integration/test_degraded.py.)"""

from types import SimpleNamespace

import pytest
from ZEO.Exceptions import ClientDisconnected

from txzserver.zope import relstoragepatches
from txzserver.zope.storagedown import RETRY_AFTER, StorageDown, WriteGuard, set_zeo_wait, storage_errors


class App:
    """A WSGI app that answers 200, or raises ``error``."""

    def __init__(self, error=None):
        self.error = error
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        if self.error is not None:
            raise self.error
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]


def call(app, method="GET", path="/Plone/doc"):
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, start_response))
    return answer["status"], answer["headers"], body.decode()


def down(connected=True, known=None):
    return StorageDown(known=lambda: dict(known or {}),
                       disconnected=lambda: [] if connected else ["main"])


def test_writes_pass_while_all_is_well():
    app = App()
    assert call(WriteGuard(app, down(), (ClientDisconnected,)), "POST")[0] == "200 OK"
    assert app.calls == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "MOVE", "LOCK", "post"])
def test_writes_while_zeo_is_disconnected_are_refused_before_zope(method, caplog):
    app = App()
    status, headers, body = call(WriteGuard(app, down(connected=False), (ClientDisconnected,)),
                                 method)
    assert status == "503 Service Unavailable" and app.calls == 0
    assert headers["Retry-After"] == str(RETRY_AFTER)
    assert headers["Content-Length"] == str(len(body.encode()))
    assert "writes are refused while the database is unavailable (main: not connected to its" \
           " storage server)" in body
    assert f"503 for {method} /Plone/doc: writes are refused" in caplog.text


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PROPFIND"])
def test_reads_go_to_zope_while_the_database_is_down(method):
    app = App()
    assert call(WriteGuard(app, down(connected=False), (ClientDisconnected,)), method)[0] == "200 OK"
    assert app.calls == 1


def test_the_probe_s_finding_refuses_writes_when_zeo_has_no_flag():
    app = App()
    guard = WriteGuard(app, down(known={"main": "OperationalError: refused"}), (OSError,))
    status, _, body = call(guard, "PUT")
    assert status.startswith("503") and "main: OperationalError: refused" in body


def test_a_lost_storage_met_by_any_request_is_a_503():
    app = App(ClientDisconnected("timed out waiting for connection"))
    status, headers, body = call(WriteGuard(app, down(), (ClientDisconnected,)), "GET")
    assert status.startswith("503") and headers["Retry-After"] == str(RETRY_AFTER)
    assert "the database is unavailable (ClientDisconnected: timed out waiting for connection)" in body


def test_other_errors_are_not_ours():
    guard = WriteGuard(App(KeyError("x")), down(), (ClientDisconnected,))
    with pytest.raises(KeyError):
        call(guard)


def test_reasons_zeo_flag_first_then_the_probe():
    assert down().reasons() == {}
    assert down(known={"main": "refused"}).reasons() == {"main": "refused"}
    assert down(connected=False, known={"main": "refused"}).reasons() == {
        "main": "not connected to its storage server"}


def test_no_retries_while_the_database_is_down():
    request = SimpleNamespace(retry_max_count=3)
    down().no_retry(SimpleNamespace(request=request))
    assert request.retry_max_count == 3
    down(connected=False).no_retry(SimpleNamespace(request=request))
    assert request.retry_max_count == 0


def test_abort_of_a_request_that_met_a_lost_storage_says_retry_after(caplog):
    headers, environ = {}, {}
    request = SimpleNamespace(method="GET", environ=environ, get={"PATH_INFO": "/Plone"}.get,
                              response=SimpleNamespace(setHeader=headers.__setitem__))
    storage = StorageDown(errors=(ClientDisconnected,))
    storage.on_abort(SimpleNamespace(request=request, retry=False,
                                     exc_info=(KeyError, KeyError("x"), None)))
    assert headers == {} and not environ
    storage.on_abort(SimpleNamespace(request=request, retry=False, exc_info=(
        ClientDisconnected, ClientDisconnected("gone\n  for now"), None)))
    assert headers == {"Retry-After": str(RETRY_AFTER)} and environ
    assert "503 for GET /Plone: the database is unavailable (ClientDisconnected: gone for now)" \
        in caplog.text


def test_storage_errors_include_relstorage_s_driver():
    class Driver:
        disconnected_exceptions = (OSError, ConnectionError)

    found = {"main": SimpleNamespace(storage=SimpleNamespace(_adapter=SimpleNamespace(driver=Driver))),
             "other": SimpleNamespace(storage=object())}
    assert set(storage_errors(found)) == {ClientDisconnected, OSError, ConnectionError}


def test_set_zeo_wait_changes_only_zeo_clients():
    runner = SimpleNamespace(timeout=30)
    zeo = SimpleNamespace(_server=runner, is_connected=lambda: True)
    found = {"main": SimpleNamespace(storage=zeo), "other": SimpleNamespace(storage=object())}
    assert set_zeo_wait(2.0, found) == ["main"] and runner.timeout == 2.0


# relstoragepatches

class Disconnected(Exception):
    pass


class FakeRelStorage:
    """What the patch touches: the driver's disconnected_exceptions and poll_invalidations."""

    _adapter = SimpleNamespace(driver=SimpleNamespace(disconnected_exceptions=(Disconnected,)))

    def __init__(self, error=None):
        self.error = error

    def poll_invalidations(self):
        if self.error is not None:
            raise self.error
        return {b"oid": 1}


@pytest.mark.parametrize("tolerated", [True, False])
def test_a_failed_poll_keeps_the_snapshot_only_when_tolerated(tolerated):
    poll = relstoragepatches._keep_snapshot_while_down(FakeRelStorage.poll_invalidations,
                                                       lambda: tolerated)
    assert poll(FakeRelStorage()) == {b"oid": 1}
    if tolerated:
        assert poll(FakeRelStorage(Disconnected())) == {}  # nothing changed: the last snapshot
    else:
        with pytest.raises(Disconnected):
            poll(FakeRelStorage(Disconnected()))
    with pytest.raises(ValueError):  # not a lost server: RelStorage's own error
        poll(FakeRelStorage(ValueError()))


def test_relstorage_patch_applies_once_and_reverts():
    from relstorage.storage import RelStorage
    original = RelStorage.poll_invalidations
    try:
        relstoragepatches.apply(lambda: True)
        patched = RelStorage.poll_invalidations
        assert patched is not original and patched.__wrapped__ is original
        relstoragepatches.apply(lambda: True)
        assert RelStorage.poll_invalidations is patched
    finally:
        relstoragepatches.revert()
    assert RelStorage.poll_invalidations is original
