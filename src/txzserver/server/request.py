"""Twisted Request with body limits: 413 early, small bodies in memory, large ones spooled."""

import io
import tempfile
import time

from twisted.logger import Logger
from twisted.web import server

log = Logger()


def _write_all(spool, data):
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[spool.write(view):]


class ZopeRequest(server.Request):
    """A request whose body is limited and spooled according to the ``ServerSettings``.

    Twisted keeps any body of unknown length or above 100 kB in a temporary file; we do
    the same with a configurable threshold and refuse bodies above max-request-body-size
    as soon as the declared length (or the bytes received) says so. ``protocol`` is the
    connection that made the request (``HTTP1Channel`` or ``H2Channel``): it knows how to
    refuse it. Reactor thread only.
    """

    _body_received = 0
    _rejected = False
    #: Monotonic clock of ``duration`` (tests replace it).
    clock = staticmethod(time.monotonic)

    def __init__(self, channel, queued=None, *, settings, protocol=None):
        super().__init__(channel)
        self.settings = settings
        self.protocol = protocol if protocol is not None else channel
        #: Made at the request line (HTTP/1.1) or its HEADERS (HTTP/2).
        self.started = self.clock()

    def duration(self):
        """Seconds since the request began (for the access log and the metrics)."""
        return self.clock() - self.started

    @property
    def spooled(self):
        """Body bytes written to a temporary file; 0 for a body kept in memory."""
        content = getattr(self, "content", None)
        if content is None or isinstance(content, io.BytesIO):
            return 0
        return self._body_received

    def reject(self, code, reason):
        """Answer ``code`` now, while the request is still being received."""
        if self.channel is not None:
            self.protocol.reject_request(self, code, reason)

    def gotLength(self, length):
        limit = self.settings.max_request_body_size
        if limit and length is not None and length > limit:
            self.content = io.BytesIO()
            self._reject_body(length)
            return
        if length is not None and length <= self.settings.request_spool_threshold:
            self.content = io.BytesIO()
        else:
            # Unbuffered: a full disk shows at the write that fails, not at some later flush.
            self.content = tempfile.TemporaryFile(prefix="txzserver-body-", buffering=0)

    def handleContentChunk(self, data):
        if self._rejected:
            return
        self._body_received += len(data)
        limit = self.settings.max_request_body_size
        if limit and self._body_received > limit:
            self._reject_body(self._body_received)
            return
        try:
            _write_all(self.content, data)
        except OSError as exc:
            self._spool_failed(exc)

    def _spool_failed(self, exc):
        """The spool could not take the body (disk full, quota): 507, and the file is gone."""
        self._rejected = True
        log.error("cannot spool a request body: {error}", error=exc)
        self.content.close()  # an unlinked temporary file: closing frees its space
        self.content = io.BytesIO()
        self.reject(507, "the server has no space left to receive this request body;"
                         " try again later")

    def _reject_body(self, size):
        self._rejected = True
        limit = self.settings.max_request_body_size
        self.reject(413, f"request body of {size} bytes or more exceeds the limit of {limit} bytes"
                          " (max-request-body-size)")

    def write(self, data):
        """Request.write, tolerating a socket that uvloop closed before Twisted noticed.

        With the uvloop reactor, writing to a connection the peer has just closed can raise
        RuntimeError("UVPoll is closed") from add_writer; the default reactor would buffer
        the bytes and report connectionLost a moment later. Drop them the same way.
        """
        try:
            super().write(data)
        except RuntimeError as exc:
            if "UVPoll" not in str(exc):
                raise
            log.debug("dropped a write to a connection closed under us: {error}", error=exc)
            if self.channel is not None and self.channel.transport is not None:
                self.channel.transport.abortConnection()

    def requestReceived(self, command, path, version):
        if self._rejected:
            return
        super().requestReceived(command, path, version)
