"""WebSocket over HTTP/3 (RFC 9220, extended CONNECT as in RFC 8441): the HTTP/3 channel's
part. The handshake, the rewrite into an HTTP/1.1 upgrade and the transport are HTTP/2's
(wsstream.py); here are what QUIC does differently: SETTINGS_ENABLE_CONNECT_PROTOCOL is an
HTTP/3 setting, the frames come as HTTP/3 DATA, FIN ends the stream, and QUIC (not HTTP)
carries flow control, which aioquic credits as the data is read.
"""

from aioquic.h3 import events as h3events
from aioquic.h3.connection import Setting

from .wsstream import WebSocketStreamsBase, as_upgrade, connect_request, refusal


def connect_setting(local, websocket):
    """``local`` (aioquic's own SETTINGS) with ENABLE_CONNECT_PROTOCOL only when the WebSocket
    service is on: aioquic offers it always, and a client would otherwise send a CONNECT only
    to be refused."""
    local = dict(local)
    if websocket is None:
        local.pop(Setting.ENABLE_CONNECT_PROTOCOL, None)
    else:
        local[Setting.ENABLE_CONNECT_PROTOCOL] = 1
    return local


class H3WebSocketStreams(WebSocketStreamsBase):
    """Mixed into ``h3.H3Channel``: CONNECT streams refused or published as WebSocket
    handshakes, and the HTTP/3 events of the streams that carry a WebSocket."""

    def extended_connect(self, stream_id, headers):
        """The stream of ``headers`` when they are a CONNECT, handled here: None when refused
        (a 4xx on the stream), else the stream whose handshake was published (the request is
        complete: no FIN will come before the WebSocket ends). False for other methods."""
        target = connect_request(headers)
        if target is None:
            return False
        refused = refusal(target, self.websocket)
        if refused is not None:
            self._answer_and_end(stream_id, *refused)
            return None
        stream = self.add_stream(stream_id, as_upgrade(headers))
        self._connects.add(stream_id)
        try:
            stream.requestComplete()
        finally:
            self._connects.discard(stream_id)
        return stream

    def websocket_event(self, event):
        """True when ``event`` (DATA, or the FIN on HEADERS/DATA) is a WebSocket stream's,
        handed to its transport: the frames, then the FIN as the end of the WebSocket."""
        websocket = self._websockets.get(event.stream_id)
        if websocket is None:
            return False
        if isinstance(event, h3events.DataReceived) and event.data:
            websocket.data_received(event.data)
        if event.stream_ended:
            websocket.loseConnection()
        return True

    def open_websocket(self, stream_id, headers, request):
        """``:status 200`` (the handshake accepted), and the access log line saying so."""
        self.h3.send_headers(stream_id, [(b":status", b"200"), *headers])
        self._transmit_soon()
        self._log_websocket(request, 200)
