"""WebSocket over HTTP/2 (RFC 8441, extended CONNECT): the streams of one ``H2Channel`` that
carry a WebSocket, and the transport the WebSocket protocol writes to.

An extended CONNECT (``:method CONNECT``, ``:protocol websocket``) on the WebSocket path is
rewritten into the HTTP/1.1 upgrade request it stands for and published like any request, so
the WebSocket service takes it exactly as it takes an HTTP/1.1 handshake (origin, credentials,
guards, limits; ``websocket/handoff.py``). The protocol then writes to a ``StreamTransport``:
Autobahn's handshake answer (an HTTP/1.1 response) becomes the stream's HEADERS (101 ->
``:status 200``, anything else that status with its reason), WebSocket frames become DATA
under the stream's flow control, loseConnection is END_STREAM, and RST_STREAM or the
connection's loss is the protocol's connectionLost.
"""

import base64
import os

import h2.settings

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

#: Private names of twisted.web._http2's H2Connection used by WebSocketStreams (the channel's
#: part that lives here): the request handler a handshake goes through, and the flush.
PRIVATE_TWISTED_NAMES = ("_requestReceived", "_tryToWriteControlData")

#: Response headers of Autobahn's 101 that mean nothing on an HTTP/2 stream (RFC 8441 5:
#: no Sec-WebSocket-Accept; RFC 9113 8.2.2: no connection-specific fields).
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
    GET with Upgrade, Connection and a Sec-WebSocket-Key (which HTTP/2 has no use for)."""
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
    """The transport of a WebSocket protocol on one HTTP/2 stream (reactor thread only).

    ``channel`` is the H2Channel, ``stream`` its H2Stream for the handshake's request.
    Producer registrations go to the stream: Twisted pauses the producer when the client's
    window is used up or OUTBOUND_HIGH_WATER bytes are queued on the stream, which is what the
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
        """END_STREAM after what is queued; the protocol hears connectionLost soon after."""
        if self.disconnecting or self.lost:
            return
        self.disconnecting = True
        if self.answered and self.stream_id in self.channel.streams:
            self.channel.endRequest(self.stream_id)
        self.channel.callLater(0, self.connection_lost, Failure(ConnectionDone()))

    def abortConnection(self):
        """RST_STREAM (CANCEL); the protocol hears connectionLost soon after."""
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
        """The stream ended (END_STREAM both ways, RST_STREAM, the connection's loss)."""
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


class WebSocketStreams:
    """The HTTP/2 channel's side of WebSocket streams, mixed into ``http2.H2Channel`` (before
    Twisted's H2Connection, whose request handling ``extended_connect`` calls): the SETTINGS
    that offer extended CONNECT, the CONNECT streams published as handshakes, and the events
    of the streams that carry a WebSocket, handed to their ``StreamTransport``."""

    def init_websocket_streams(self, websocket):
        #: The WebSocket service (None when off): extended CONNECT streams go to it.
        self.websocket = websocket
        self._connects = set()  # extended CONNECT streams being published (the handshake)
        self._websockets = {}  # stream id -> StreamTransport of a WebSocket on that stream

    def websocket_settings(self):
        """RFC 8441 3: WebSocket by extended CONNECT on this connection, when it is served."""
        if self.websocket is None:
            return {}
        return {h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1}

    def extended_connect(self, event):
        """True when ``event`` (a request's HEADERS) was a CONNECT, handled here: refused on
        the stream with a 4xx, or published as the WebSocket handshake it stands for (the
        request is complete: no END_STREAM will come)."""
        target = connect_request(event.headers)
        if target is None:
            return False
        refused = refusal(target, self.websocket)
        if refused is not None:
            self._answer_and_reset(event.stream_id, *refused)
            return True
        event.headers = as_upgrade(event.headers)
        self._connects.add(event.stream_id)
        super()._requestReceived(event)
        self._report_activity()
        try:
            self.streams[event.stream_id].requestComplete()
        finally:
            self._connects.discard(event.stream_id)
        return True

    def websocket_data(self, event):
        """True when ``event``'s DATA belongs to a WebSocket stream (handed to it)."""
        websocket = self._websockets.get(event.stream_id)
        if websocket is None:
            return False
        self.openStreamWindow(event.stream_id, event.flow_controlled_length)
        websocket.data_received(event.data)
        return True

    def websocket_ended(self, event):
        """True when the stream ended is a WebSocket's (RFC 8441 5: END_STREAM is its FIN)."""
        websocket = self._websockets.get(event.stream_id)
        if websocket is None:
            return False
        websocket.loseConnection()
        return True

    def websocket_aborted(self, event):
        """RST_STREAM of a WebSocket stream: the protocol's connectionLost."""
        websocket = self._websockets.get(event.stream_id)
        if websocket is not None:
            websocket.connection_lost(Failure(ConnectionLost(
                f"stream reset with code {event.error_code}")))

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

    def open_websocket(self, stream_id, headers, request):
        """``:status 200`` (the handshake accepted), and the access log line saying so."""
        self.conn.send_headers(stream_id, [(b":status", b"200"), *headers])
        self._tryToWriteControlData()
        self._log_websocket(request, 200)

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
