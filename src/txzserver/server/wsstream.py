"""A WebSocket on one stream of a multiplexed connection: extended CONNECT, RFC 8441 for
HTTP/2 (wsh2.py) and RFC 9220 for HTTP/3 (wsh3.py), the same on both.

An extended CONNECT (``:method CONNECT``, ``:protocol websocket``) on the WebSocket path is
rewritten into the HTTP/1.1 upgrade request it stands for and published like any request, so
the WebSocket service takes it exactly as it takes an HTTP/1.1 handshake (origin, credentials,
guards, limits; ``websocket/handoff.py``). The protocol then writes to a ``StreamTransport``:
Autobahn's handshake answer (an HTTP/1.1 response) becomes the stream's HEADERS (101 ->
``:status 200``, anything else that status with its reason), WebSocket frames become DATA
under the stream's flow control, loseConnection ends the stream, and a stream reset or the
connection's loss is the protocol's connectionLost.

What a channel offers the transport: ``streams`` (id -> its H2Stream), ``endRequest``,
``abortRequest``, ``callLater``, ``reject_request`` and ``open_websocket`` (the protocol's own
HEADERS); ``WebSocketStreamsBase`` is the part both channels share.
"""

import base64
import os

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

#: Response headers of Autobahn's 101 that mean nothing on an HTTP/2 or HTTP/3 stream (RFC
#: 8441 5, RFC 9220 3: no Sec-WebSocket-Accept; no connection-specific fields).
DROPPED_HEADERS = frozenset({b"upgrade", b"connection", b"sec-websocket-accept", b"server",
                             b"keep-alive", b"transfer-encoding"})


def connect_request(headers):
    """(``:protocol`` value or None, ``:path``) of a CONNECT request; None for other methods."""
    pseudo = {name: value for name, value in headers if name.startswith(b":")}
    if pseudo.get(b":method") != b"CONNECT":
        return None
    return pseudo.get(b":protocol"), pseudo.get(b":path")


def refusal(target, websocket):
    """(status, reason) refusing a CONNECT ``target`` (from ``connect_request``), or None
    when it is a WebSocket handshake for ``websocket`` (the service, or None when off)."""
    protocol, path = target
    if protocol is None:
        return 405, "CONNECT tunnels are not served here (only extended CONNECT for WebSocket)"
    if websocket is None:
        return 400, "no WebSocket endpoint here: extended CONNECT is not enabled"
    if protocol.lower() != b"websocket":
        return 400, f"unsupported :protocol {protocol.decode('latin-1')!r} (only websocket)"
    endpoint = path.split(b"?", 1)[0].decode("latin-1")
    if websocket.site_for(endpoint) is None:
        return 404, f"{endpoint} is not a WebSocket endpoint"
    return None


def as_upgrade(headers, key=None):
    """The request headers of the HTTP/1.1 WebSocket handshake an extended CONNECT stands for:
    GET with Upgrade, Connection and a Sec-WebSocket-Key (which HTTP/2 and
    HTTP/3 have no use for)."""
    key = key or base64.b64encode(os.urandom(16))
    fields = [(b":method", b"GET") if name == b":method" else (name, value)
              for name, value in headers if name != b":protocol"]
    return fields + [(b"upgrade", b"websocket"), (b"connection", b"upgrade"),
                     (b"sec-websocket-key", key)]


def parse_response_head(head):
    """(status, reason, headers) of an HTTP/1.1 response head (bytes up to the blank line)."""
    lines = head.split(b"\r\n")
    _, status, reason = (lines[0].split(b" ", 2) + [b""])[:3]
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers.append((name.strip().lower(), value.strip()))
    return int(status), reason.decode("utf-8", "replace"), headers


@implementer(ITransport, IConsumer)
class StreamTransport:
    """The transport of a WebSocket protocol on one stream (reactor thread only).

    ``channel`` is the H2Channel or H3Channel, ``stream`` its stream of the handshake's
    request. Producer registrations go to the stream: the channel pauses the producer when
    the client's window is used up or OUTBOUND_HIGH_WATER bytes are queued on the stream
    (HTTP/3: sent and not acknowledged, QUIC's flow control behind it), which is what the
    WebSocket protocol's backlog limit watches (a reader that stops costs bounded memory).
    """

    disconnecting = False
    protocol = None

    def __init__(self, channel, stream, request):
        self.channel = channel
        self.stream = stream
        self.stream_id = stream.streamID
        self.request = request  # until the handshake is answered (access log)
        self._head = b""
        self.answered = False
        self.lost = False

    # ITransport

    def write(self, data):
        if self.disconnecting or self.lost:
            return
        if self.answered:
            self.stream.write(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self._head[:end], self._head[end + 4:]
        self._head = b""
        self._answer(*parse_response_head(head), rest)

    def writeSequence(self, data):
        self.write(b"".join(data))

    def loseConnection(self):
        """End the stream after what is queued (END_STREAM, a QUIC FIN); the protocol hears
        connectionLost soon after."""
        if self.disconnecting or self.lost:
            return
        self.disconnecting = True
        if self.answered and self.stream_id in self.channel.streams:
            self.channel.endRequest(self.stream_id)
        self.channel.callLater(0, self.connection_lost, Failure(ConnectionDone()))

    def abortConnection(self):
        """Reset the stream; the protocol hears connectionLost soon after."""
        if self.lost:
            return
        self.disconnecting = True
        if self.stream_id in self.channel.streams:
            self.channel.abortRequest(self.stream_id)
        self.channel.callLater(0, self.connection_lost, Failure(ConnectionLost("stream aborted")))

    def getPeer(self):
        return self.stream.getPeer()

    def getHost(self):
        return self.stream.getHost()

    def isSecure(self):
        return self.stream.isSecure()

    # IConsumer

    def registerProducer(self, producer, streaming):
        self.stream.registerProducer(producer, streaming)

    def unregisterProducer(self):
        if self.stream.producer is not None:
            self.stream.unregisterProducer()

    # From the channel

    def data_received(self, data):
        """DATA from the client: WebSocket frames."""
        if not self.lost and self.protocol is not None:
            self.protocol.dataReceived(data)

    def connection_lost(self, reason):
        """The stream ended (ended both ways, reset, the connection's loss)."""
        if self.lost:
            return
        self.lost = self.disconnecting = True
        self.channel.websocket_gone(self.stream_id)
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connectionLost(reason)

    # The handshake answer

    def _answer(self, status, reason, headers, rest):
        self.answered = True
        request, self.request = self.request, None
        if status != 101:
            # Autobahn closes the connection after its refusal: the stream is answered and
            # reset here, the channel forgets it, and the protocol hears connectionLost.
            self.disconnecting = True
            kept = [(name, value) for name, value in headers if name == b"retry-after"]
            self.channel.refuse_websocket(request, status, reason, kept)
            self.channel.callLater(0, self.connection_lost,
                                   Failure(ConnectionDone(f"handshake refused: {status}")))
            return
        fields = [(name, value) for name, value in headers if name not in DROPPED_HEADERS]
        self.channel.open_websocket(self.stream_id, fields, request)
        if rest:
            self.stream.write(rest)


class WebSocketStreamsBase:
    """A channel's WebSocket streams, HTTP/2's or HTTP/3's (mixed into the channel): the
    handshakes being published, the transports of accepted ones, their access lines."""

    def init_websocket_streams(self, websocket):
        #: The WebSocket service (None when off): extended CONNECT streams go to it.
        self.websocket = websocket
        self._connects = set()  # extended CONNECT streams being published (the handshake)
        self._websockets = {}  # stream id -> StreamTransport of a WebSocket on that stream

    def websocket_on(self, stream_id):
        """The StreamTransport of the WebSocket on ``stream_id``, or None."""
        return self._websockets.get(stream_id)

    def websocket_reset(self, stream_id, code):
        """The client reset a WebSocket's stream: the protocol's connectionLost."""
        websocket = self._websockets.get(stream_id)
        if websocket is not None:
            websocket.connection_lost(Failure(ConnectionLost(f"stream reset with code {code}")))

    def websockets_lost(self, reason):
        for websocket in list(self._websockets.values()):
            websocket.connection_lost(reason)

    def stream_transport(self, request):
        """The transport for the WebSocket handshake ``request`` (websocket/handoff.py), or
        None when it did not come as an extended CONNECT (an Upgrade request: 426)."""
        stream = request.channel
        if stream.streamID not in self._connects:
            return None
        transport = self._websockets[stream.streamID] = StreamTransport(self, stream, request)
        return transport

    def refuse_websocket(self, request, code, reason, headers=()):
        """The handshake refused (origin, credentials, limits): that status on the stream."""
        self.reject_request(request, code, reason, headers)
        self._log_websocket(request, code)

    def websocket_gone(self, stream_id):
        self._websockets.pop(stream_id, None)

    def _log_websocket(self, request, code):
        """The access line and request metrics of a WebSocket handshake (its request never
        finishes: the stream carries the WebSocket), with the method sent: CONNECT."""
        if request is None or self.site is None:
            return
        request.method = b"CONNECT"
        request.code = code
        self.site.log(request)
