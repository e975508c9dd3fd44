"""Answer a request early with an error status and a reason, on HTTP/1.1 or HTTP/2.

Twisted only knows a bare "400 Bad Request" for requests it refuses while reading them.
These helpers send the right status (413, 431, 400) with a short text body, then end the
request without reading the rest of it: the connection is closed on HTTP/1.1 (we cannot
know where the next request starts), only the stream is reset on HTTP/2 (RFC 9113 8.1).
"""

from twisted.logger import Logger

log = Logger()

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    426: b"Upgrade Required",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def http1_error_response(code: int, reason: str) -> bytes:
    """The bytes of a complete HTTP/1.1 error response that closes the connection."""
    body = reason.encode("utf-8") + b"\n"
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (code, REASONS.get(code, b"Error")),
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: %d\r\n" % len(body),
        b"Connection: close\r\n\r\n",
        body,
    ])


def reject_http1(channel, code: int, reason: str) -> None:
    """Write the error to an HTTP/1.1 channel's transport and close the connection (once)."""
    if getattr(channel, "rejected", False):
        return
    channel.rejected = True
    log.info("rejected request from {peer}: {code} {reason}",
             peer=_peer(channel.transport), code=code, reason=reason)
    channel.transport.write(http1_error_response(code, reason))
    channel.loseConnection()


def reject_h2_stream(connection, stream_id: int, code: int, reason: str) -> None:
    """Send a complete error response on one HTTP/2 stream and reset it with NO_ERROR."""
    import h2.errors
    import h2.exceptions
    log.info("rejected HTTP/2 stream {stream} from {peer}: {code} {reason}",
             stream=stream_id, peer=_peer(connection.transport), code=code, reason=reason)
    body = reason.encode("utf-8") + b"\n"
    conn = connection.conn
    conn.send_headers(stream_id, [
        (b":status", str(code).encode()),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ])
    conn.send_data(stream_id, body, end_stream=True)
    try:
        conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.NO_ERROR)
    except h2.exceptions.StreamClosedError:
        pass  # the client had sent its whole body: our response closed the stream already
    if connection._tryToWriteControlData() and stream_id in connection.streams:
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        connection.streams[stream_id].connectionLost(Failure(ConnectionLost(reason)))
        connection._requestDone(stream_id)


def reject(request, code: int, reason: str) -> None:
    """Reject ``request`` while it is still being received, whatever its protocol."""
    channel = request.channel
    if channel is None:
        return
    connection = getattr(channel, "_conn", None)
    if connection is not None and hasattr(channel, "streamID"):
        reject_h2_stream(connection, channel.streamID, code, reason)
    else:
        reject_http1(channel, code, reason)


def _peer(transport):
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:
        return "?"
