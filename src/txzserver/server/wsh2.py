"""WebSocket over HTTP/2 (RFC 8441, extended CONNECT): the HTTP/2 channel's part, its SETTINGS,
the CONNECT streams published as handshakes and their frames handed to their
``StreamTransport``; what HTTP/3 shares (the rewrite, the transport) is in wsstream.py.
"""

import h2.settings

from .wsstream import WebSocketStreamsBase, as_upgrade, connect_request, refusal

#: Private names of twisted.web._http2's H2Connection used by WebSocketStreams (the channel's
#: part that lives here): the request handler a handshake goes through, and the flush.
PRIVATE_TWISTED_NAMES = ("_requestReceived", "_tryToWriteControlData")


class WebSocketStreams(WebSocketStreamsBase):
    """The HTTP/2 channel's side of WebSocket streams, mixed into ``http2.H2Channel`` (before
    Twisted's H2Connection, whose request handling ``extended_connect`` calls): the SETTINGS
    that offer extended CONNECT, the CONNECT streams published as handshakes, and the events
    of the streams that carry a WebSocket, handed to their ``StreamTransport``."""

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
        self.websocket_reset(event.stream_id, event.error_code)

    def open_websocket(self, stream_id, headers, request):
        """``:status 200`` (the handshake accepted), and the access log line saying so."""
        self.conn.send_headers(stream_id, [(b":status", b"200"), *headers])
        self._tryToWriteControlData()
        self._log_websocket(request, 200)
