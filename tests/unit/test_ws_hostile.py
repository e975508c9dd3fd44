"""txzserver.websocket.protocol against clients that leave while their handshake waits for Zope.

The principal lookup runs in the publisher pool; behind other work it can take longer than the
client stays (or than the open-handshake timeout). A connection that is gone when its lookup
finishes must not be opened (it used to enter the hub, forever: it counted against
max-connections and was "sent" every event), and a lookup still queued when the client left is
not made at all (1,000 abandoned handshakes would otherwise cost 1,000 Zope calls in the pool
that pages share). And a closing handshake the server started ends with a clean TCP close,
not a reset that can discard the close frame before the client reads it.
Integration counterpart: tests/integration/test_ws_hostile.py.
"""

import struct

import pytest
from twisted.python.failure import Failure

from tests.support.threadpools import ManualThreadPool, SynchronousThreadPool

from .wsframes import CLOSE, Endpoint, client_close, close_code


class StartedThreadPool:
    """The worker has already called Zope; its result reaches the reactor on ``deliver``."""

    def __init__(self):
        self.results = []

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        SynchronousThreadPool().callInThreadWithCallback(
            lambda ok, result: self.results.append((onResult, ok, result)), f, *args, **kwargs)

    def deliver(self):
        results, self.results = self.results, []
        for onResult, ok, result in results:
            onResult(ok, result)


def waiting_endpoint(monkeypatch, pool):
    endpoint = Endpoint(monkeypatch)
    endpoint.service.pool = pool
    return endpoint


def test_lookup_queued_when_the_client_left_is_skipped(monkeypatch):
    pool = ManualThreadPool()
    endpoint = waiting_endpoint(monkeypatch, pool)
    client = endpoint.connect(b"/ws")
    assert client.status is None and len(pool.calls) == 1  # waiting for a worker
    client.lose()
    pool.run()
    assert endpoint.app.environs == []  # Zope was not asked for a client that is gone
    assert len(endpoint.hub) == 0
    assert client.transport.value() == b""


def test_lookup_finishing_after_the_client_left_opens_nothing(monkeypatch):
    pool = StartedThreadPool()
    endpoint = waiting_endpoint(monkeypatch, pool)
    client = endpoint.connect(b"/ws")
    assert len(endpoint.app.environs) == 1  # the lookup ran; its answer has not arrived yet
    client.lose()
    pool.deliver()
    assert len(endpoint.hub) == 0  # was 1: a dead connection in the hub for good
    assert client.transport.value() == b""
    assert endpoint.hub.deliver(_event()) == 0


@pytest.mark.parametrize("pool_kind", [ManualThreadPool, StartedThreadPool])
def test_open_handshake_timeout_while_the_lookup_waits(monkeypatch, pool_kind):
    pool = pool_kind()
    endpoint = waiting_endpoint(monkeypatch, pool)
    client = endpoint.connect(b"/ws")
    endpoint.reactor.advance(9)
    assert not client.transport.disconnecting
    endpoint.reactor.advance(2)  # OPEN_HANDSHAKE_TIMEOUT is 10 s
    assert client.transport.disconnecting or client.transport.disconnected
    # an answer, not a dropped connection: a proxy retries a request that got none (HAProxy's
    # retry-on empty-response), and its client waited for every retry's timeout
    refused = client.transport.value()
    assert refused.startswith(b"HTTP/1.1 503 principal lookup waited over 10 s\r\n"), refused
    assert b"\r\nRetry-After: 5\r\n" in refused
    client.lose()
    pool.run() if pool_kind is ManualThreadPool else pool.deliver()
    assert len(endpoint.hub) == 0
    assert client.transport.value() == refused  # no 101 after the refusal


def test_refusal_arriving_after_the_client_left_is_quiet(monkeypatch, caplog):
    from .wsframes import ZopeApp
    pool = StartedThreadPool()
    endpoint = Endpoint(monkeypatch, app=ZopeApp(status="401 Unauthorized"))
    endpoint.service.pool = pool
    client = endpoint.connect(b"/ws")
    client.lose()
    pool.deliver()
    assert client.transport.value() == b""  # no 401 written to a closed transport
    assert len(endpoint.hub) == 0


def test_a_crash_after_the_client_left_is_still_logged(monkeypatch):
    pool = StartedThreadPool()
    endpoint = waiting_endpoint(monkeypatch, pool)
    client = endpoint.connect(b"/ws")
    client.lose()
    logged = []
    monkeypatch.setattr("txzserver.websocket.protocol.log.failure",
                        lambda *args, **kwargs: logged.append(args))
    onResult, _, _ = pool.results[0]
    pool.results = []
    onResult(False, Failure(RuntimeError("ZODB is gone")))
    assert logged and len(endpoint.hub) == 0


def _event():
    from txzserver.bus import Event
    return Event("created", "/Plone/x", guard=frozenset({"Member"}))


# The end of a closing handshake the server started

def test_a_close_frame_that_breaks_the_protocol_is_answered_and_closed_cleanly(endpoint_plain):
    """An unmasked close frame: the server sends 1002, and takes the frame as the client's
    answer. The TCP connection is closed, not reset: a reset made the client's kernel drop
    the 1002 before the client read it (seen against the real server)."""
    client, _ = _opened(endpoint_plain)
    client.send(bytes([0x88, 2]) + struct.pack("!H", 1000))
    [(opcode, payload)] = client.frames()
    assert (opcode, close_code(payload)) == (CLOSE, 1002)
    assert client.transport.disconnecting
    assert not client.transport.disconnected  # loseConnection, not abortConnection
    client.lose()
    assert len(endpoint_plain.hub) == 0
    assert endpoint_plain.reactor.getDelayedCalls() == []  # the abort timer went with it


def test_a_client_that_does_not_read_the_final_close_is_aborted_later(endpoint_plain):
    client, _ = _opened(endpoint_plain)
    client.protocol.sendClose(1000)
    client.send(client_close(1000))  # the answer: handshake complete
    assert client.transport.disconnecting and not client.transport.disconnected
    endpoint_plain.reactor.advance(client.protocol.closeHandshakeTimeout + 0.1)
    assert client.transport.disconnected  # aborted: the socket never drained


def test_other_drops_still_abort(endpoint_plain):
    """The open-handshake and ping timeouts (wasClean False) keep resetting the connection."""
    client, _ = _opened(endpoint_plain)
    client.protocol.wasClean = False
    client.protocol.dropConnection(abort=True)
    assert client.transport.disconnected


@pytest.fixture
def endpoint_plain(monkeypatch):
    return Endpoint(monkeypatch)


def _opened(endpoint):
    client = endpoint.connect(b"/ws")
    assert client.status == 101, client.status_line
    return client, client.messages()
