"""HTTP/2: Twisted's H2Connection with our limits, a fair idle timeout and a reset budget.

Everything here that touches Twisted's private HTTP/2 code is named in PRIVATE_TWISTED_NAMES
(``tests/unit/test_twisted_private.py`` fails, naming the attribute, when an upgrade removes one).
"""

from types import SimpleNamespace

import h2.errors
import h2.exceptions
import h2.settings
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._http2 import H2Connection

from .errors import error_body, peer_of
from .request import ZopeRequest

#: Private names of twisted.web._http2 (itself a private module) used below.
PRIVATE_TWISTED_NAMES = (
    "_requestReceived", "_requestEnded", "_requestDataReceived",  # h2 event handlers we extend
    "_requestAborted",         # RST_STREAM from the client: counted against the reset budget
    "_requestDone",            # forget a stream we answered and reset ourselves
    "_tryToWriteControlData",  # flush HEADERS/RST_STREAM now (False when the buffer overflowed)
    "_terminate",              # GOAWAY already queued: close the transport
)

log = Logger()


class ResetBudget:
    """Token bucket of stream resets a client may cause (HTTP/2 Rapid Reset, CVE-2023-44487).

    ``burst`` resets at once, refilled at ``rate`` per second. Browsers cancel a few streams
    when a page is left; a flood of HEADERS + RST_STREAM empties the bucket in a moment.
    """

    def __init__(self, burst, rate, now):
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.stamp = now

    def spend(self, now):
        """Take one token; False when the bucket is empty (the connection must go)."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class H2Channel(H2Connection):
    """One HTTP/2 connection, limited by the ``ServerSettings`` it is built with.

    The idle timeout waits while streams are open (Twisted's HTTP/1.1 channel suspends its
    timeout while a request is handled; its HTTP/2 connection does not, so a long publish or a
    large response to a slow reader could be cut). Streams the client resets count against
    a ``ResetBudget``.
    Its ``owner`` is told when the last open stream is done (idle) and when one opens (busy).
    """

    #: The ``NegotiatingProtocol`` this connection speaks for.
    owner = None
    _gone = False

    def __init__(self, settings, reactor=None, upgrade=None):
        super().__init__(reactor=reactor)
        self.settings = settings
        #: (HTTP2-Settings value, request headers) when made by "Upgrade: h2c".
        self.upgrade = upgrade
        self.resets = ResetBudget(settings.http2_max_reset_burst, settings.http2_reset_rate,
                                  self._reactor.seconds())
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.http2_max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_size,
        })
        # The decoder takes the setting only once the client acknowledged it; bound it now.
        self.conn.decoder.max_header_list_size = settings.max_header_size

    def requestFactory(self, stream, queued=False):
        """Called by H2Stream as ``requestFactory(stream, queued=False)``."""
        return ZopeRequest(stream, queued, settings=self.settings, protocol=self)

    # IProtocol

    def connectionMade(self):
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

    def connectionLost(self, reason, _cancelTimeouts=True):
        self._gone = True  # its streams are forgotten below: that is not "idle"
        super().connectionLost(reason, _cancelTimeouts=_cancelTimeouts)

    def close_idle(self):
        """GOAWAY (NO_ERROR) and close this connection, which has no open stream."""
        self.conn.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR)
        self._terminate(Failure(ConnectionDone("idle connection closed to make room"
                                               " (max-connections)")))

    def _report_activity(self):
        if self.owner is None or self._gone:
            return
        if self.streams:
            self.owner.went_busy()
        else:
            self.owner.went_idle()

    def timeoutConnection(self):
        if self.streams:
            # The timer has fired and is gone: resetTimeout() would do nothing and the
            # connection would never time out again. Start a new one.
            self.setTimeout(self.timeOut)
            return
        super().timeoutConnection()

    # h2 events
    #
    # Twisted hands on every event of one read, even after a handler closed the connection:
    # past a spent reset budget that would be a thousand more requests built, reset, logged
    # and answered with GOAWAY each. Once the connection is lost the rest is ignored.

    def _requestReceived(self, event):
        if self._gone:
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
        if event.stream_id in self.streams:
            super()._requestDataReceived(event)
        else:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _requestEnded(self, event):
        if event.stream_id in self.streams:
            super()._requestEnded(event)

    def _requestAborted(self, event):
        if self._gone:
            return
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
        self.conn.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                                   last_stream_id=stream_id)
        self._terminate(Failure(ConnectionLost("too many stream resets")))

    # Rejection

    def reject_request(self, request, code, reason):
        """Send a complete error response on the request's stream and reset it (NO_ERROR)."""
        stream_id = request.channel.streamID
        log.info("rejected HTTP/2 stream {stream} from {peer}: {code} {reason}",
                 stream=stream_id, peer=peer_of(self.transport), code=code, reason=reason)
        body = error_body(reason)
        self.conn.send_headers(stream_id, [
            (b":status", str(code).encode()),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ])
        self.conn.send_data(stream_id, body, end_stream=True)
        try:
            self.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass  # the client had sent its whole body: our response closed the stream already
        if self._tryToWriteControlData() and stream_id in self.streams:
            self.streams[stream_id].connectionLost(Failure(ConnectionLost(reason)))
            self._requestDone(stream_id)
