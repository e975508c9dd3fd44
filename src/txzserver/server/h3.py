"""HTTP/3 (RFC 9114) over QUIC: one QUIC connection's channel, aioquic's sans-IO
QuicConnection and H3Connection driven by Twisted's UDP (``h3listen.H3Endpoint`` feeds it
datagrams), so it runs on every reactor (select, epoll, asyncio, uvloop).

The channel plays towards Twisted's ``H2Stream`` the part ``H2Connection`` plays (write,
end, abort, flow control), so each request is an ``H2Request`` published on the same
thread pool, publish queue and streaming path as an HTTP/2 stream. Limits are HTTP/2's
where they mean the same (streams at once, header size and count, reset budget, idle
timeout, the connection slot). Reactor thread only.

aioquic's private names used here are in PRIVATE_AIOQUIC_NAMES (checked by the unit tests).
"""

from aioquic.h3 import events as h3events
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import (ErrorCode, FrameType, FrameUnexpected, H3Connection,
                                   HeadersState, Setting, encode_frame)
from aioquic.quic import events as quicevents
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._http2 import H2Stream

from .errors import error_body
from .h2limits import TokenBucket, field_count
from .h2request import H2Request
from .hpackout import CONNECTION_NAMES, clean_value
from .http2 import OUTBOUND_HIGH_WATER
from .quicmtu import PathMTUSearch
from .wsh3 import H3WebSocketStreams, connect_setting

#: aioquic internals read here: the streams' send buffers (the backpressure measure) and the
#: connection's bidirectional stream limit (max concurrent streams).
PRIVATE_AIOQUIC_NAMES = ("_streams", "_local_max_streams_bidi")
#: aioquic's QuicStreamSender internals: where its buffer starts (the first byte not yet
#: acknowledged) and stops (the last byte written).
PRIVATE_AIOQUIC_SENDER_NAMES = ("_buffer_start", "_buffer_stop")
#: aioquic's H3Connection internals: its control stream, where GOAWAY goes (it has no
#: send_goaway of its own).
PRIVATE_AIOQUIC_H3_NAMES = ("_local_control_stream_id", "_get_or_create_stream", "_quic_logger")
#: Private names of twisted.web._http2: the stream class our channel drives.
PRIVATE_TWISTED_NAMES = ("H2Stream",)

#: Response bytes of one connection's streams sent and not yet acknowledged, past which no
#: stream's producer is resumed. The sent bytes stay in aioquic's buffers until the client
#: acknowledges them, and at OUTBOUND_HIGH_WATER for those as well (256 KiB) one download
#: went no faster than 256 KiB per round trip: 9-13 MiB/s on loopback, where the reactor's
#: own delay in reading acknowledgements made the round trip 5-25 ms. In flight is bounded
#: by congestion control and the client's flow-control window; this bounds what a client
#: that acknowledges later packets and never the first one can make us hold.
MAX_UNACKED = 4 * 1024 * 1024


def _unacknowledged_bytes(sender):
    """Bytes an aioquic stream sender holds until the client acknowledges them."""
    return sender._buffer_stop - sender._buffer_start


log = Logger()


def header_size(headers):
    """The field section size of RFC 9114 4.2.2 (names, values, 32 bytes per field)."""
    return sum(len(name) + len(value) + 32 for name, value in headers)


class LimitedH3Connection(H3Connection):
    """H3Connection that tells the client our SETTINGS_MAX_FIELD_SECTION_SIZE, and offers
    extended CONNECT only with a WebSocket service (RFC 9220 3)."""

    def __init__(self, quic, max_field_section_size, websocket=None):
        # read by _get_local_settings, which the constructor calls to send SETTINGS
        self.max_field_section_size = max_field_section_size
        self.websocket = websocket
        super().__init__(quic)

    def send_data(self, stream_id, data, end_stream):
        """aioquic's, without copying the body into a new bytes: the DATA frame's type and
        length go to the stream first, then the body as it is (aioquic's ``encode_frame``
        copied each 64 KiB chunk of a download once more: a tenth of the reactor thread)."""
        if not data or self._quic_logger is not None:
            super().send_data(stream_id, data, end_stream)
            return
        with self._get_or_create_stream(stream_id) as stream:
            if stream.headers_send_state != HeadersState.AFTER_HEADERS:
                raise FrameUnexpected("DATA frame is not allowed in this state")
            if end_stream:
                stream.finish_sending()
        self._quic.send_stream_data(
            stream_id, encode_uint_var(FrameType.DATA) + encode_uint_var(len(data)))
        self._quic.send_stream_data(stream_id, data, end_stream)

    def send_goaway(self, stream_id):
        """GOAWAY on the control stream: requests on ``stream_id`` and after are not served."""
        self._quic.send_stream_data(self._local_control_stream_id,
                                    encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id)))

    def _get_local_settings(self):
        local = connect_setting(super()._get_local_settings(), self.websocket)
        if self.max_field_section_size:
            local[Setting.MAX_FIELD_SECTION_SIZE] = self.max_field_section_size
        return local


class H3Stream(H2Stream):
    """One request stream: Twisted's H2Stream (the request's channel: headers, body,
    producer) with the HTTP version the request reports (access log label "h3")."""

    def requestComplete(self):
        if self.producing:
            self._request.requestReceived(self.command, self.path, b"HTTP/3")
        else:
            super().requestComplete()


class H3Channel(H3WebSocketStreams):
    """One QUIC connection speaking HTTP/3, in the place of H2Connection for its streams.

    Built by ``H3Endpoint`` with a ``Connection`` (slot, publish queue, site). After every
    batch of work (a datagram read, a timer, writes of a reactor turn) ``transmit`` sends
    what aioquic has and re-arms its timer with ``reactor.callLater``. A stream's response
    waits in aioquic's send buffer until it is sent and the client acknowledges it; with
    OUTBOUND_HIGH_WATER bytes there not yet sent, or MAX_UNACKED bytes of the connection
    not yet acknowledged, the stream's producer is paused, and it resumes once sending and
    acknowledgements drained them, so a client that does not read holds bounded buffers
    and no thread.
    """

    _gone = False  # terminated: its streams are forgotten
    _closing = False  # CONNECTION_CLOSE queued: what the client sends now is ignored
    _timer = None
    _transmit_call = None
    _last_cancelled = None  # the stream whose cancel was counted last
    _keepalive = None  # PING timer while streams are open
    goaway = None  # the first stream id refused after GOAWAY (shutdown drain)
    _next_stream = 0  # the lowest client stream id not yet seen (what GOAWAY names)

    def __init__(self, endpoint, quic, addr, connection):
        self.endpoint = endpoint
        self.quic = quic
        self.addr = addr
        self.connection = connection
        self.settings = connection.settings
        self.site = self.factory = connection.site
        self.reactor = connection.reactor
        self.init_websocket_streams(connection.site.websocket)
        self.callLater = self.reactor.callLater
        self.h3 = LimitedH3Connection(quic, self.settings.max_header_size, self.websocket)
        # Both: the value goes out in the handshake's transport parameters; ``sent`` is what
        # aioquic compares it with to raise the limit (MAX_STREAMS) as streams finish. Left
        # at aioquic's 128, no MAX_STREAMS was ever sent and a client had
        # http2-max-concurrent-streams streams for the connection's whole life.
        limit = quic._local_max_streams_bidi
        limit.value = limit.sent = self.settings.http2_max_concurrent_streams
        self.streams = {}
        self.resets = TokenBucket(self.settings.http2_max_reset_burst,
                                  self.settings.http2_reset_rate, self.reactor.seconds())
        #: Streams whose producer is paused until acknowledgements drain their buffer.
        self._blocked = set()
        self.path_mtu = PathMTUSearch(quic, endpoint.max_datagram_size)

    # Datagrams in, events, datagrams out

    def datagram_received(self, data, addr):
        self.addr = addr
        self.quic.receive_datagram(data, addr, now=self.reactor.seconds())
        self._process_events()
        if self.endpoint.received_by(self):
            self.transmit()

    def _on_timer(self):
        self._timer = None
        if self._gone:
            return
        self.quic.handle_timer(now=self.reactor.seconds())
        self._process_events()
        self.transmit()

    def transmit(self):
        """Send what aioquic has to send; resume the producers that sending and
        acknowledgements made room for; re-arm aioquic's timer."""
        if self._transmit_call is not None and self._transmit_call.active():
            self._transmit_call.cancel()
        self._transmit_call = None
        now = self.reactor.seconds()
        datagrams = self.quic.datagrams_to_send(now=now)
        datagrams.extend(self.path_mtu.datagrams(now, datagrams))
        if datagrams:
            self.endpoint.send(datagrams)
        if self._blocked:
            self._resume_drained_streams()
        self._arm_timer(self.quic.get_timer())

    def _arm_timer(self, at):
        """One DelayedCall for aioquic's timer, due at ``at`` (None: no timer). aioquic moves
        its deadline with nearly every packet (the loss detection timer follows the last
        one sent), so the call is moved only when the deadline comes sooner: one due
        earlier fires, aioquic's handle_timer does only what is due, and the timer is armed
        again. Cancelling and scheduling a call for every transmit was 3 % of the reactor
        thread during a download."""
        timer = self._timer
        if timer is not None and not timer.active():
            timer = self._timer = None
        if at is None or self._gone:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        delay = max(0.0, at - self.reactor.seconds())
        if timer is None:
            self._timer = self.reactor.callLater(delay, self._on_timer)
        elif at < timer.getTime():
            timer.reset(delay)

    def _transmit_soon(self):
        """Coalesce the writes of one reactor turn into one transmit."""
        if self._transmit_call is None and not self._gone:
            self._transmit_call = self.reactor.callLater(0, self.transmit)

    def _process_events(self):
        event = self.quic.next_event()
        while event is not None:
            if isinstance(event, quicevents.ConnectionIdIssued):
                self.endpoint.channels[event.connection_id] = self
            elif isinstance(event, quicevents.ConnectionIdRetired):
                self.endpoint.channels.pop(event.connection_id, None)
            elif isinstance(event, quicevents.ConnectionTerminated):
                self._terminated(event)
                return
            elif self._closing:
                pass
            elif isinstance(event, (quicevents.StreamReset, quicevents.StopSendingReceived)):
                self._stream_reset(event.stream_id, event.error_code)
            if not self._closing:
                for h3event in self.h3.handle_event(event):
                    self._h3_event(h3event)
            event = self.quic.next_event()

    def _h3_event(self, event):
        if self.websocket_event(event):
            return
        stream = self.streams.get(event.stream_id)
        if isinstance(event, h3events.HeadersReceived):
            if stream is None:
                stream = self._open_stream(event)
        elif isinstance(event, h3events.DataReceived) and stream is not None:
            stream.receiveDataChunk(event.data, len(event.data))
        if stream is not None and event.stream_ended and event.stream_id in self.streams:
            stream.requestComplete()

    def _open_stream(self, event):
        """The stream's request, or None when it was refused (431, too many streams)."""
        headers, stream_id = event.headers, event.stream_id
        self._next_stream = max(self._next_stream, stream_id + 4)
        if self.goaway is not None and stream_id >= self.goaway:
            self.quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            return None
        if len(self.streams) >= self.settings.http2_max_concurrent_streams:
            self.quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            return None
        if field_count(headers) > self.settings.max_headers:
            self._answer_and_end(stream_id, 431, f"more than {self.settings.max_headers}"
                                                 " header fields (max-headers)")
            return None
        if header_size(headers) > self.settings.max_header_size:
            self._answer_and_end(stream_id, 431, "request header fields larger than"
                                                 f" {self.settings.max_header_size} bytes"
                                                 " (max-header-size)")
            return None
        connect = self.extended_connect(stream_id, headers)
        if connect is not False:
            return connect
        return self.add_stream(stream_id, headers)

    def add_stream(self, stream_id, headers):
        """The request of ``headers`` on ``stream_id``, now one of the connection's streams."""
        # content-length last: the body limit is chosen with every header known (http2.py)
        headers = sorted(headers, key=lambda header: header[0] == b"content-length")
        stream = H3Stream(stream_id, self, headers, self.requestFactory, self.site, self.factory)
        self.streams[stream_id] = stream
        self.connection.went_busy()
        self._keep_alive()
        return stream

    def requestFactory(self, stream, queued=False):
        return H2Request(stream, queued, settings=self.settings, protocol=self)

    def _stream_reset(self, stream_id, code):
        """The client cancelled a stream: RESET_STREAM (it stops sending) or STOP_SENDING (it
        wants no more response; the request was complete, a rapid-reset flood's way). A
        cancel sends both, one after the other: counted once against the reset budget."""
        self.websocket_reset(stream_id, code)
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.connectionLost(Failure(ConnectionLost(f"stream reset with code {code}")))
            self._stream_gone(stream_id)
        if stream_id == self._last_cancelled:
            return
        self._last_cancelled = stream_id
        if self.resets.spend(self.reactor.seconds()):
            return
        log.warn("closing HTTP/3 connection from {peer}: more than {burst} stream resets"
                 " (http2-max-reset-burst)", peer=self._peer_text(), burst=self.resets.burst)
        self.close(ErrorCode.H3_EXCESSIVE_LOAD, "too many stream resets")

    def close(self, code, reason):
        """CONNECTION_CLOSE with an HTTP/3 error code; nothing more is read."""
        self._closing = True
        self.quic.close(error_code=code, reason_phrase=reason)
        self._transmit_soon()

    def _terminated(self, event):
        if self._gone:
            return
        self._gone = True
        why = event.reason_phrase or event.error_code
        reason = Failure(ConnectionDone(f"QUIC connection closed ({why})"))
        self.websockets_lost(reason)
        for stream in list(self.streams.values()):
            stream.connectionLost(reason)
        self.streams.clear()
        for call in (self._timer, self._keepalive, self._transmit_call):
            if call is not None and call.active():
                call.cancel()
        self.endpoint.forget(self)
        self.connection.closed()

    # What H2Stream asks of its connection

    def getPeer(self):
        return _address(self.addr)

    def getHost(self):
        return _address(self.endpoint.transport.getHost())

    def _isSecure(self):
        return True

    def openStreamWindow(self, stream_id, increment):
        """aioquic credits received data itself (MAX_STREAM_DATA as it is read)."""

    def remainingOutboundWindow(self, stream_id):
        """Room for more of the stream's response: OUTBOUND_HIGH_WATER less its bytes not
        yet sent, at most MAX_UNACKED less the connection's bytes not yet acknowledged. At
        0 or less Twisted pauses the stream's producer."""
        return self._room(stream_id, self._unacknowledged())

    def _room(self, stream_id, unacknowledged):
        return min(OUTBOUND_HIGH_WATER - self._unsent(stream_id),
                   MAX_UNACKED - unacknowledged)

    def _unsent(self, stream_id):
        """Response bytes of ``stream_id`` written to aioquic and not yet sent once."""
        stream = self.quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - max(sender.highest_offset, sender._buffer_start)

    def _buffered(self, stream_id):
        """Response bytes of ``stream_id`` not yet acknowledged by the client."""
        stream = self.quic._streams.get(stream_id)
        return 0 if stream is None else _unacknowledged_bytes(stream.sender)

    def _unacknowledged(self):
        """Bytes of every stream of the connection not yet acknowledged by the client."""
        return sum(_unacknowledged_bytes(stream.sender) for stream in self.quic._streams.values())

    def writeHeaders(self, version, code, reason, headers, stream_id):
        if stream_id not in self.streams:
            return
        status = code if isinstance(code, bytes) else b"%d" % code  # Twisted passes bytes
        fields = [(b":status", status)]
        fields += [(name.lower(), clean_value(value)) for name, value in headers
                   if name.lower() not in CONNECTION_NAMES]
        self.h3.send_headers(stream_id, fields)
        self._transmit_soon()

    def writeDataToStream(self, stream_id, data):
        stream = self.streams.get(stream_id)
        if stream is None or not data:
            return
        self.h3.send_data(stream_id, bytes(data), end_stream=False)
        if self.remainingOutboundWindow(stream_id) <= 0:
            self._blocked.add(stream_id)
            stream.flowControlBlocked()
        self._transmit_soon()

    def endRequest(self, stream_id):
        if self.streams.pop(stream_id, None) is None:
            return
        self.h3.send_data(stream_id, b"", end_stream=True)
        self._stream_gone(stream_id)
        self._transmit_soon()

    def abortRequest(self, stream_id):
        if self.streams.pop(stream_id, None) is None:
            return
        self.quic.reset_stream(stream_id, ErrorCode.H3_INTERNAL_ERROR)
        self._stream_gone(stream_id)
        self._transmit_soon()

    def _send100Continue(self, stream_id):
        self.h3.send_headers(stream_id, [(b":status", b"100")])
        self._transmit_soon()

    def _respondToBadRequestAndDisconnect(self, stream_id):
        self._answer_and_end(stream_id, 400, "bad request")
        self.streams.pop(stream_id, None)
        self._stream_gone(stream_id)

    def _stream_gone(self, stream_id):
        self._blocked.discard(stream_id)
        if not self.streams and not self._gone:
            self.connection.went_idle()

    def _keep_alive(self):
        """While streams are open, PING every third of idle-timeout: QUIC's idle timer counts
        network silence, and a publish longer than idle-timeout must not close a connection
        whose client is there (HTTP/2 waits for it too). A client that no longer answers
        (acknowledges nothing) still times out."""
        if self._keepalive is not None and self._keepalive.active():
            return
        self._keepalive = None
        if self.streams and not self._gone and not self._closing:
            self._keepalive = self.reactor.callLater(self.settings.idle_timeout / 3, self._ping)

    def _ping(self):
        self._keepalive = None
        if self.streams and not self._gone and not self._closing:
            self.quic.send_ping(0)
            self.transmit()
            self._keep_alive()

    def _resume_drained_streams(self):
        """After sending and acknowledgements: resume the producers of the paused streams
        that have room again."""
        unacknowledged = self._unacknowledged()
        for stream_id in list(self._blocked):
            stream = self.streams.get(stream_id)
            if stream is None:
                self._blocked.discard(stream_id)
            elif self._room(stream_id, unacknowledged) > 0:
                self._blocked.discard(stream_id)
                stream.windowUpdated()

    # Shutdown drain

    def drain(self):
        """GOAWAY: the streams the client has opened are served, later ones refused."""
        if self.goaway is None and not self._closing and not self._gone:
            self.goaway = self._next_stream
            self.h3.send_goaway(self.goaway)
            self._transmit_soon()

    def quiet(self):
        """No stream open and every byte sent acknowledged: closing now loses nothing."""
        return self._gone or not self.streams and not self._unacknowledged()

    # Rejection and eviction (as H2Channel's)

    def reject_request(self, request, code, reason, headers=()):
        """A complete error response on the request's stream, which then ends."""
        stream_id = request.channel.streamID
        stream = self.streams.pop(stream_id, None)
        self._answer_and_end(stream_id, code, reason, headers)
        if stream is not None:
            stream.connectionLost(Failure(ConnectionLost(reason)))
            self._stream_gone(stream_id)

    def _answer_and_end(self, stream_id, code, reason, headers=()):
        log.info("rejected HTTP/3 stream {stream} from {peer}: {code} {reason}",
                 stream=stream_id, peer=self._peer_text(), code=code, reason=reason)
        body = error_body(reason)
        self.h3.send_headers(stream_id, [
            (b":status", str(code).encode()), *headers,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ])
        self.h3.send_data(stream_id, body, end_stream=True)
        # the rest of the request is not wanted (RFC 9114 4.1.1)
        self.quic.stop_stream(stream_id, ErrorCode.H3_NO_ERROR)
        self._transmit_soon()

    def close_idle(self):
        """Close this connection, which has no open stream, to make room (max-connections)."""
        self.close(ErrorCode.H3_NO_ERROR, "idle connection closed to make room")

    def _peer_text(self):
        return f"{self.addr[0]}:{self.addr[1]}"


def _address(addr):
    if not isinstance(addr, tuple):
        return addr
    cls = IPv6Address if ":" in addr[0] else IPv4Address
    return cls("UDP", addr[0], addr[1])
