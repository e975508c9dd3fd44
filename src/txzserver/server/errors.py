"""Error responses sent before Zope sees a request: the status, a reason, and who was refused.

Twisted only knows a bare "400 Bad Request" for requests it refuses while reading them. Each
protocol rejects in its own way (``HTTP1Channel.reject_request`` closes the connection,
``H2Channel.reject_request`` resets only the stream, RFC 9113 8.1); this module holds what they
share: the reason phrases, the bytes of an HTTP/1.1 error response and the peer for the log.
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
    507: b"Insufficient Storage",
}


def error_body(reason: str) -> bytes:
    return reason.encode("utf-8") + b"\n"


def http1_error_response(code: int, reason: str, headers=()) -> bytes:
    """The bytes of a complete HTTP/1.1 error response that closes the connection;
    ``headers``: extra (name, value) pairs of bytes, such as Retry-After."""
    body = error_body(reason)
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (code, REASONS.get(code, b"Error")),
        *(b"%s: %s\r\n" % (name, value) for name, value in headers),
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: %d\r\n" % len(body),
        b"Connection: close\r\n\r\n",
        body,
    ])


def send_http1_error(transport, code: int, reason: str, headers=()) -> None:
    """Write the HTTP/1.1 error response to ``transport`` and log whom it refused (both
    HTTP/1.1 channels; they close the connection after it)."""
    log.info("rejected request from {peer}: {code} {reason}",
             peer=peer_of(transport), code=code, reason=reason)
    transport.write(http1_error_response(code, reason, headers))


class HTTP1Refusals:
    """How both HTTP/1.1 channels (http1.HTTP1Channel, llhttp1.LLHTTP1Channel) refuse: the
    connection marked refused, its head timer stopped, the error response written; each closes
    the connection after it. The channel has ``rejected``, ``_stop_head_timer``, ``transport``
    and ``settings``."""

    def _send_error(self, code, reason, headers=()):
        self.rejected = True
        self._stop_head_timer()
        send_http1_error(self.transport, code, reason, headers)

    def _send_body_timeout(self):
        """408 for a request body that stopped arriving (RFC 9110 15.5.9)."""
        self._send_error(408, f"request body incomplete: nothing received for"
                              f" {self.settings.idle_timeout:g} seconds (idle-timeout)")


def peer_of(transport) -> str:
    """``host:port`` of the client, for log lines ("?" when the transport cannot tell)."""
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:
        return "?"
