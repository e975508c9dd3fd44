"""HTTP/2: Twisted's H2Connection with our limits, a fair idle timeout and a reset budget.

Everything here that touches Twisted's private HTTP/2 code is named in PRIVATE_TWISTED_NAMES
(``tests/unit/test_twisted_private.py`` fails, naming the attribute, when an upgrade removes one).
"""

from types import SimpleNamespace

import h2.connection
import h2.errors
import h2.exceptions
import h2.settings
import h2.stream
import priority
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import _http2
from twisted.web._http2 import H2Connection

from .errors import error_body, peer_of
from .hpackout import use_for_responses
from .h2limits import AdvertisedSettings, FrameGuard, TokenBucket, field_count
from .h2request import H2Request
from .wsh2 import WebSocketStreams

#: Private names of twisted.web._http2 (itself a private module) used below.
PRIVATE_TWISTED_NAMES = (
    "_requestReceived", "_requestEnded", "_requestDataReceived",  # h2 event handlers we extend
    "_requestAborted",         # RST_STREAM from the client: counted against the reset budget
    "_requestDone",            # forget a stream we answered and reset ourselves
    "_tryToWriteControlData",  # flush HEADERS/RST_STREAM now (False when the buffer overflowed)
    "_terminate",              # GOAWAY already queued: close the transport
    "_sendPrioritisedData",    # the sending loop, replaced: a batch of frames per turn
)

#: H2Connection's methods that H2Stream sends a response through, replaced below (one sending
#: turn after the reactor's turn); ``tests/unit/test_http2.py`` checks H2Stream still calls them.
REPLACED_TWISTED_METHODS = ("writeHeaders", "writeDataToStream", "endRequest")

#: Private state of H2Connection (not callables) that our sending loop reads and sets, and the
#: module's end-of-stream marker (``tests/unit/test_http2.py`` checks they still exist).
PRIVATE_TWISTED_ATTRIBUTES = (
    "_stillProducing", "_consumerBlocked", "_sendingDeferred", "_outboundStreamQueues",
)
PRIVATE_TWISTED_MODULE_NAMES = ("_END_STREAM_SENTINEL",)

#: Response bytes one stream may have produced but not yet sent. Twisted pauses a stream's
#: producer only when the client's flow-control window is used up; a client that opens a
#: 2 GB window and does not read made the whole of a big file queue in memory.
OUTBOUND_HIGH_WATER = 256 * 1024

#: Response bytes one turn of the sending loop sends on the stream it picked: as many DATA
#: frames as the client's frame size and window allow, in one write to the transport.
#: Twisted sent one frame (16 KB with most clients) per reactor turn, one send() each: h2c ran
#: at 15% of HTTP/1.1's throughput for the same file, h2 over TLS at 8% (tests/bench/
#: h2download.py). Streams still take turns by priority; one turn holds the connection for at
#: most this many bytes.
SEND_BATCH = 256 * 1024

#: Bytes one send() takes from a plain TCP transport's buffer (Twisted's FileDescriptor sends at
#: most SEND_LIMIT, 128 KB, per writable event): a batch of DATA frames leaves in one system
#: call, not in pieces a reactor turn apart (server CPU for a 256 MiB h2c download about a
#: quarter lower, measured). TLS transports are left alone: they write 32 KB records anyway.
TCP_SEND_LIMIT = 1024 * 1024

#: Seconds a connection closed for hostile input (floods, bad frames, the reset budget) has
#: to take its GOAWAY and close before it is aborted.
HOSTILE_CLOSE_GRACE = 1.0

log = Logger()


#: Frame types and flags this module frames itself (RFC 9113 6.1, 6.2, 6.10).
DATA, HEADERS, CONTINUATION = 0x0, 0x1, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4

#: Private state of h2's H2Connection used below: its outbound buffer, where the HEADERS
#: frames built here join what h2 itself queues (``tests/unit/test_http2.py`` checks it).
PRIVATE_H2_ATTRIBUTES = ("_data_to_send",)


def _frame_header(length, frame_type, flags, stream_id):
    """A frame's 9-byte header (RFC 9113 4.1)."""
    return length.to_bytes(3, "big") + bytes((frame_type, flags)) + stream_id.to_bytes(4, "big")


def _data_frame_header(length, stream_id, flags=0):
    """The header of a DATA frame, no padding (RFC 9113 6.1)."""
    return _frame_header(length, DATA, flags, stream_id)


def _abort(transport):
    """Abort ``transport`` unless it is closed already (then there is nothing to do)."""
    if transport is not None and not getattr(transport, "disconnected", False):
        try:
            transport.abortConnection()
        except Exception:  # closed meanwhile: TLS and TCP transports differ in what they raise
            pass


class H2Channel(WebSocketStreams, H2Connection):
    """One HTTP/2 connection, limited by the ``ServerSettings`` it is built with.

    The idle timeout waits while streams are being answered (Twisted's HTTP/1.1 channel
    suspends its timeout while a request is handled; its HTTP/2 connection does not, so a long
    publish or a large response to a slow reader could be cut), but not for a client that
    neither reads nor opens its flow-control window. Streams the client resets, and streams
    refused past SETTINGS_MAX_CONCURRENT_STREAMS, count against a ``TokenBucket`` of resets. Requests
    with more than max-headers fields get 431 on their stream.
    Its ``connection`` (a ``connection.Connection``, None for a channel built alone in a test)
    gives it the site and the reactor, and is told when the last open stream is done (idle) and
    when one opens (busy).
    """

    _gone = False
    _released = False  # no longer the transport's producer
    _host = None
    _send_call = None  # the scheduled _send_now

    def __init__(self, settings, reactor=None, upgrade=None, connection=None, websocket=None):
        # The site's reactor, not the global one: H2Connection schedules its sending loop on it.
        super().__init__(reactor=connection.reactor if connection is not None else reactor)
        self.settings = settings
        self.connection = connection
        if connection is not None:
            self.site = self.factory = connection.site
            self.callLater = connection.reactor.callLater
            websocket = connection.site.websocket
        self.init_websocket_streams(websocket)
        #: (HTTP2-Settings value, request headers) when made by "Upgrade: h2c".
        self.upgrade = upgrade
        self.resets = TokenBucket(settings.http2_max_reset_burst, settings.http2_reset_rate,
                                  self._reactor.seconds())
        # Response headers come from Twisted's Headers (CR and LF replaced), without pseudo
        # or empty names (PublishTask._send_headers); h2's outbound validation on top was a
        # fifth of this connection's CPU for a small response, its indexing encoder and
        # normalization another sixth: hpackout encodes them, each distinct field once per
        # process. Inbound validation (what the client sends) stays on.
        use_for_responses(self.conn)
        self.conn.local_settings = AdvertisedSettings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.http2_max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_size,
            **self.websocket_settings(),
        })
        # h2's own check, for streams opened within one read before _requestReceived refuses
        # them: past this many the reset budget would be spent anyway (h2's connection error).
        self.conn.local_settings.h2_limit = (settings.http2_max_concurrent_streams
                                             + settings.http2_max_reset_burst)
        self._frames = FrameGuard(TokenBucket(settings.http2_max_control_frames,
                                              settings.http2_control_frame_rate,
                                              self._reactor.seconds()), self._reactor.seconds)
        #: Streams with queued data taken out of the sending loop while their window is shut.
        self._stalled = set()
        # The decoder takes the setting only once the client acknowledged it; bound it now.
        self.conn.decoder.max_header_list_size = settings.max_header_size

    def requestFactory(self, stream, queued=False):
        """Called by H2Stream as ``requestFactory(stream, queued=False)``."""
        return H2Request(stream, queued, settings=self.settings, protocol=self)

    # IProtocol

    def connectionMade(self):
        if isinstance(self.transport, tcp.Connection):
            self.transport.SEND_LIMIT = max(self.transport.SEND_LIMIT, TCP_SEND_LIMIT)
        if self.upgrade is None:
            super().connectionMade()
            self.setTimeout(self.settings.idle_timeout)  # TimeoutMixin keeps it from here on
            self._report_activity()
            return
        # As H2Connection.connectionMade, but the upgraded request becomes stream 1.
        offer, headers = self.upgrade
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        self.setTimeout(self.settings.idle_timeout)
        self.conn.initiate_upgrade_connection(offer)
        self.transport.write(self.conn.data_to_send())
        self._requestReceived(SimpleNamespace(stream_id=1, headers=headers))
        self._requestEnded(SimpleNamespace(stream_id=1))

    def dataReceived(self, data):
        if self._gone:
            return
        error = self._frames.check(data, self.conn.max_inbound_frame_size)
        if error is None:
            super().dataReceived(data)
            if self._stalled and not self._gone:
                self._wake_stalled_streams()
            return
        code, reason = error
        log.info("closing HTTP/2 connection from {peer}: {reason}", peer=peer_of(self.transport),
                 reason=reason)
        self._close_hostile(code, reason)

    def _close_hostile(self, code, reason, last_stream_id=None):
        """GOAWAY ``code``, read nothing more, and abort if the client has not let the
        connection close within HOSTILE_CLOSE_GRACE (a flood from a client that does not read
        would otherwise keep it, and our reading, going until Twisted's abort timeout)."""
        self.conn.close_connection(error_code=code, last_stream_id=last_stream_id)
        transport = self.transport
        pause = getattr(transport, "pauseProducing", None)
        if pause is not None:
            pause()
        self._terminate(Failure(ConnectionLost(reason)))
        self._reactor.callLater(HOSTILE_CLOSE_GRACE, _abort, transport)

    def connectionLost(self, reason, _cancelTimeouts=True):
        self._gone = True  # its streams are forgotten below: that is not "idle"
        self.websockets_lost(reason)
        super().connectionLost(reason, _cancelTimeouts=_cancelTimeouts)
        if not _cancelTimeouts:
            # Twisted's own close (GOAWAY sent or received): it called loseConnection.
            self._let_transport_close()

    def _let_transport_close(self):
        """Unregister from the transport, which ``negotiate`` made us the producer of.

        TLS sends its close_notify and closes only once no producer is registered, and
        H2Connection never unregisters: every HTTP/2 connection over TLS that the server
        closed (GOAWAY, idle timeout) stayed open until the client left, or for Twisted's
        abortTimeout (15 s) after an idle timeout.
        """
        if self.transport is not None and not self._released:
            self._released = True
            self.transport.unregisterProducer()

    def close_idle(self):
        """GOAWAY (NO_ERROR) and close this connection, which has no open stream."""
        self.conn.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR)
        self._terminate(Failure(ConnectionDone("idle connection closed to make room"
                                               " (max-connections)")))

    def _report_activity(self):
        if self.connection is None or self._gone:
            return
        if self.streams:
            self.connection.went_busy()
        else:
            self.connection.went_idle()

    def timeoutConnection(self):
        if self.streams and not all(self._waits_for_client(sid) for sid in self.streams):
            # A stream is still being published. The timer has fired and is gone:
            # resetTimeout() would do nothing and the connection would never time out
            # again. Start a new one.
            self.setTimeout(self.timeOut)
            return
        super().timeoutConnection()
        self._let_transport_close()

    def _waits_for_client(self, stream_id):
        """Response data is ready for ``stream_id`` but the client takes none: it keeps its
        flow-control window shut or does not read (then nothing was sent or received for a
        whole idle timeout, or this would not be asked)."""
        window, queued = self._window_and_queue(stream_id)
        return queued > 0 or (self.streams[stream_id].producer is not None and window <= 0)

    def _window_and_queue(self, stream_id):
        """(the client's flow-control window for ``stream_id``, response bytes queued on it)."""
        try:
            window = self.conn.local_flow_control_window(stream_id)
        except h2.exceptions.NoSuchStreamError:  # closed in h2 (StreamClosedError) or unknown
            return 0, 0
        return window, window - H2Connection.remainingOutboundWindow(self, stream_id)

    def getHost(self):
        """This side's address, asked of the socket once (getsockname, a system call that
        gives the GIL away, was made for every request's environ)."""
        if self._host is None:
            self._host = self.transport.getHost()
        return self._host

    # Sending: one write per response, no spinning on shut windows, a bound on what one
    # stream may queue
    #
    # Twisted wrote a response's HEADERS as soon as they were made, and woke the sending loop
    # for each piece of body and for the end of the stream: three writes (three send() calls,
    # each giving the GIL to a publisher thread) for a small response that HTTP/1.1 sends in
    # one. Here what a reactor turn produces is sent by one sending turn scheduled after it.

    def writeHeaders(self, version, code, reason, headers, streamID):
        headers.insert(0, (b":status", code))
        try:
            if code[:1] == b"1":  # an interim response: h2's path, whose state input differs
                self.conn.send_headers(streamID, headers)
            else:
                self._send_response_headers(streamID, headers)
        except h2.exceptions.StreamClosedError:
            return  # the client reset the stream meanwhile, as Twisted ignores it
        self._send_soon()

    def _send_response_headers(self, stream_id, headers):
        """A final response's HEADERS, as h2's ``send_headers`` sends them with its outbound
        normalization and validation off (``hpackout`` does both), without its frame objects
        (a tenth of a small h2c response's CPU): the connection's and the stream's
        SEND_HEADERS inputs (a closed stream raises StreamClosedError), the block encoded,
        then HEADERS and CONTINUATION frames no larger than the client allows."""
        conn = self.conn
        stream = conn.streams.get(stream_id)
        if stream is None:
            raise h2.exceptions.StreamClosedError(stream_id)
        conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_HEADERS)
        stream.state_machine.process_input(h2.stream.StreamInputs.SEND_HEADERS)
        block = conn.encoder.encode(headers)
        size = conn.max_outbound_frame_size
        pieces = []
        for at in range(0, len(block), size):
            piece = block[at:at + size]
            pieces += (_frame_header(len(piece), CONTINUATION if at else HEADERS,
                                     END_HEADERS if at + size >= len(block) else 0, stream_id),
                       piece)
        conn._data_to_send += b"".join(pieces)

    def writeDataToStream(self, streamID, data):
        self._outboundStreamQueues[streamID].append(data)
        if self.conn.local_flow_control_window(streamID) > 0:
            self.priority.unblock(streamID)
            self._send_soon()
        if self.remainingOutboundWindow(streamID) <= 0:
            self.streams[streamID].flowControlBlocked()

    def endRequest(self, streamID):
        self._outboundStreamQueues[streamID].append(_http2._END_STREAM_SENTINEL)
        self.priority.unblock(streamID)
        self._send_soon()

    def _send_soon(self):
        """Send what this turn produced once it is over (one call, however many pieces)."""
        if self._send_call is None:
            self._send_call = self._reactor.callLater(0, self._send_now)

    def _send_now(self):
        """Wake the sending loop if it is parked; a running one sends at its next turn. It
        writes the HEADERS made meanwhile with its batch, or alone when it finds no data."""
        self._send_call = None
        if self._sendingDeferred is not None and not self._gone:
            wake, self._sendingDeferred = self._sendingDeferred, None
            wake.callback(None)

    def remainingOutboundWindow(self, streamID):
        """Room for more data on ``streamID``: the flow-control window minus what is queued,
        and at most OUTBOUND_HIGH_WATER minus what is queued. At 0 or less Twisted pauses the
        stream's producer."""
        remaining = super().remainingOutboundWindow(streamID)
        queued = self.conn.local_flow_control_window(streamID) - remaining
        return min(remaining, OUTBOUND_HIGH_WATER - queued)

    def _sendPrioritisedData(self, *args):
        """The sending loop (replaces Twisted's): one stream per turn, picked by priority, and
        up to SEND_BATCH bytes of it, framed as the client allows, in one transport write."""
        if not self._stillProducing:
            return
        try:
            stream_id = next(self.priority)
        except priority.DeadlockError:
            # No stream has data: send HEADERS made without it, and wait until one has
            # (writeDataToStream, endRequest).
            if not self._tryToWriteControlData():
                return  # aborted: too much control data buffered for a client that does not read
            self._sendingDeferred = Deferred()
            self._sendingDeferred.addCallback(self._sendPrioritisedData)
            return
        if self._consumerBlocked is not None:  # wait behind the transport
            self._consumerBlocked.addCallback(self._sendPrioritisedData)
            return
        self.resetTimeout()
        self._send_batch(stream_id)
        self._park_or_resume_streams()
        self._reactor.callLater(0, self._sendPrioritisedData)

    def _send_batch(self, stream_id):
        """Frame up to SEND_BATCH queued bytes of ``stream_id`` and write them at once; end the
        stream when its end marker is reached."""
        queue = self._outboundStreamQueues[stream_id]
        budget = SEND_BATCH
        ended = False
        pieces = []
        last_frame = None  # where the header of this batch's last DATA frame is in pieces
        while queue and budget > 0:
            chunk = queue[0]
            if chunk is _http2._END_STREAM_SENTINEL:
                queue.popleft()
                if last_frame is None:
                    self.conn.end_stream(stream_id)  # an empty DATA frame with END_STREAM
                else:  # END_STREAM on the last frame sent: no frame of its own
                    pieces[last_frame] = _data_frame_header(len(pieces[last_frame + 1]),
                                                            stream_id, END_STREAM)
                    self.conn.streams[stream_id].state_machine.process_input(
                        h2.stream.StreamInputs.SEND_END_STREAM)
                ended = True
                break
            if not len(chunk):  # written to wake the loop (_wake_stalled_streams)
                queue.popleft()
                continue
            window = self.conn.local_flow_control_window(stream_id)
            frame = min(self.conn.max_outbound_frame_size, window, budget)
            if frame <= 0:
                break
            # A view: no copy of the rest of the chunk per frame (Twisted's loop copied the
            # remainder of a 256 KB chunk for every 16 KB frame).
            view = memoryview(chunk)
            at = min(len(view), window, budget)
            pieces.append(self.conn.data_to_send())
            pieces.extend(self._data_frames(stream_id, view[:at], frame))
            last_frame = len(pieces) - 2
            budget -= at
            if at == len(view):
                queue.popleft()
            else:
                queue[0] = view[at:]  # len() of what is left, as remainingOutboundWindow sums
        pieces.append(self.conn.data_to_send())
        self.transport.write(b"".join(pieces))
        if ended:
            self._requestDone(stream_id)
            return
        if not queue:
            self.priority.block(stream_id)
        if self.remainingOutboundWindow(stream_id) <= 0:
            self.streams[stream_id].flowControlBlocked()

    def _data_frames(self, stream_id, data, frame):
        """``data`` sent on ``stream_id`` as DATA frames of at most ``frame`` bytes; the
        frames' bytes (a list of pieces to join: headers and views of ``data``).

        h2 spends ~20 us of Python on each frame (state machine, frame objects) and copies
        the payload six times (memoryview.tobytes, frame body, frame, join, its send buffer,
        data_to_send): with the client's 16 KB frames that was most of the server's time,
        h2c stayed at a third of HTTP/1.1, and for a large download the copies were. The
        frames are built here (RFC 9113 6.1: 9-byte header, type 0, no flags, no padding,
        as the client's SETTINGS_MAX_FRAME_SIZE demands) and h2 is told what went out
        (``_account_data``): the payload is copied once, when the pieces are joined.
        """
        window = self.conn.local_flow_control_window(stream_id)
        if len(data) > window:
            raise h2.exceptions.FlowControlError(
                f"cannot send {len(data)} bytes, flow control window is {window}")
        self._account_data(stream_id, len(data))
        pieces = []
        for at in range(0, len(data), frame):
            body = data[at:at + frame]
            pieces += (_data_frame_header(len(body), stream_id), body)
        return pieces

    def _account_data(self, stream_id, length):
        """What ``H2Connection.send_data`` records of ``length`` bytes of DATA (no padding,
        no END_STREAM): the state machines' SEND_DATA input (it refuses a closed stream) and
        the connection's and the stream's flow-control windows."""
        self.conn.state_machine.process_input(h2.connection.ConnectionInputs.SEND_DATA)
        stream = self.conn.streams[stream_id]
        stream.state_machine.process_input(h2.stream.StreamInputs.SEND_DATA)
        stream.outbound_flow_control_window -= length
        self.conn.outbound_flow_control_window -= length

    def _park_or_resume_streams(self):
        for stream_id, stream in list(self.streams.items()):
            window, queued = self._window_and_queue(stream_id)
            if queued and window <= 0:
                # Twisted leaves a stream with queued data in its priority tree when the
                # window is shut (a response finished behind a zero window): its loop picked
                # it again and again, sending nothing, and reset the idle timeout each time:
                # the reactor spun at 100% CPU for as long as the client kept its window shut.
                self.priority.block(stream_id)
                self._stalled.add(stream_id)
            else:
                # Twisted resumes a paused producer on WINDOW_UPDATE only; one paused at
                # OUTBOUND_HIGH_WATER resumes here, once its queue has drained below it.
                stream.windowUpdated()

    def _wake_stalled_streams(self):
        """After a read: a stalled stream whose window the client opened (WINDOW_UPDATE or
        SETTINGS_INITIAL_WINDOW_SIZE) is unblocked, and the parked sending loop woken, by
        writing nothing to it (Twisted wakes it for WINDOW_UPDATE only when a producer writes)."""
        for stream_id in list(self._stalled):
            if stream_id not in self.streams:
                self._stalled.discard(stream_id)
            elif self._window_and_queue(stream_id)[0] > 0:
                self._stalled.discard(stream_id)
                self.writeDataToStream(stream_id, b"")

    # h2 events
    #
    # Twisted hands on every event of one read, even after a handler closed the connection:
    # past a spent reset budget that would be a thousand more requests built, reset, logged
    # and answered with GOAWAY each. Once the connection is lost the rest is ignored.

    def _requestReceived(self, event):
        if self._gone:
            return
        stream_id = event.stream_id
        if len(self.streams) >= self.settings.http2_max_concurrent_streams:
            # RFC 9113 5.1.2: a stream error; REFUSED_STREAM tells the client to retry it.
            self.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.REFUSED_STREAM)
            self._spend_reset(stream_id)
            return
        if field_count(event.headers) > self.settings.max_headers:
            self._answer_and_reset(stream_id, 431, f"more than {self.settings.max_headers}"
                                                   " header fields (max-headers)")
            return
        # Twisted calls gotLength when it meets content-length: last, so that the request's
        # body limit is chosen with every header known (credentials or none)
        event.headers = sorted(event.headers, key=lambda header: header[0] == b"content-length")
        if self.extended_connect(event):
            return
        super()._requestReceived(event)
        self._report_activity()

    def _requestDone(self, streamID):
        super()._requestDone(streamID)
        if not self.streams:
            self._report_activity()

    def _requestDataReceived(self, event):
        # A stream we rejected early (413) may still receive DATA frames in flight.
        if self._gone:
            return
        if self.websocket_data(event):
            return
        if event.stream_id in self.streams:
            super()._requestDataReceived(event)
        else:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _requestEnded(self, event):
        if self.websocket_ended(event):
            return
        if event.stream_id in self.streams:
            super()._requestEnded(event)

    def _requestAborted(self, event):
        if self._gone:
            return
        self.websocket_aborted(event)
        if event.stream_id in self.streams:
            stream = self.streams[event.stream_id]
            stream.connectionLost(Failure(ConnectionLost(f"stream reset with code {event.error_code}")))
            self._requestDone(event.stream_id)
        self._spend_reset(event.stream_id)

    def _spend_reset(self, stream_id):
        """Count one reset; send GOAWAY (ENHANCE_YOUR_CALM) and close when the budget is gone."""
        if self.resets.spend(self._reactor.seconds()):
            return
        log.warn("closing HTTP/2 connection from {peer}: more than {burst} stream resets"
                 " (http2-max-reset-burst)", peer=peer_of(self.transport), burst=self.resets.burst)
        # Streams after this one are not handled (see above): GOAWAY says so, not h2's default
        # (the highest stream id of the whole read).
        self._close_hostile(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "too many stream resets",
                            last_stream_id=stream_id)

    # Rejection

    def reject_request(self, request, code, reason, headers=()):
        """Send a complete error response on the request's stream and reset it (NO_ERROR)."""
        stream_id = request.channel.streamID
        if self._answer_and_reset(stream_id, code, reason, headers) and stream_id in self.streams:
            self.streams[stream_id].connectionLost(Failure(ConnectionLost(reason)))
            self._requestDone(stream_id)

    def _answer_and_reset(self, stream_id, code, reason, headers=()):
        """The error response and RST_STREAM (NO_ERROR) on ``stream_id``; False when the
        connection was dropped for buffering too much control data."""
        log.info("rejected HTTP/2 stream {stream} from {peer}: {code} {reason}",
                 stream=stream_id, peer=peer_of(self.transport), code=code, reason=reason)
        body = error_body(reason)
        if self.conn.local_flow_control_window(stream_id) < len(body):
            body = b""  # h2 refuses DATA past the client's window: the status alone
        self.conn.send_headers(stream_id, [
            (b":status", str(code).encode()),
            *headers,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ], end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        try:
            self.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass  # the client had sent its whole body: our response closed the stream already
        return self._tryToWriteControlData()
