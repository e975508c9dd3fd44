"""The request of an HTTP/2 stream: the lean request, fed and answered through Twisted's
``H2Stream``.

Twisted's ``Request`` and its two ``Headers`` (every name and value encoded and checked
again on each call) were about a sixth of a small h2c request's CPU in the reactor. This
request keeps the fields as h2 decoded them (lower-case names, validated by h2), offers what
``H2Stream`` asks of a request (``requestHeaders``, ``gotLength``, ``handleContentChunk``,
``parseCookies``, ``requestReceived``, ``connectionLost``) and sends its response through the
stream: HEADERS from its fields, body through the stream's flow control, the end through
``requestDone``. Reactor thread only.
"""

import io

from twisted.web.http import NO_BODY_CODES

from .leanrequest import LeanRequest, RawHeaders, add_default_fields


class H2Request(LeanRequest):
    """One request on an HTTP/2 stream (``channel``, the ``H2Stream``) of ``protocol``
    (the ``H2Channel``, which refuses requests for the body limits)."""

    def __init__(self, stream, queued=False, *, settings, protocol):
        # method and target come with the end of the request (requestReceived)
        super().__init__(stream, b"", b"", b"HTTP/2", RawHeaders(), settings, persistent=True)
        self.protocol = protocol

    # What H2Stream asks of its request

    def parseCookies(self):
        """Twisted parses cookies into ``received_cookies``; Zope reads the header itself."""

    def requestReceived(self, command, path, version):
        """The whole request is here (END_STREAM): publish it, unless its body was refused."""
        if self._rejected:
            return
        self.method = command
        self.uri = path
        self.path = path.partition(b"?")[0]
        self.clientproto = version
        if self.content is None:
            self.content = io.BytesIO()
        self.content.seek(0)
        self.process()

    # What the publisher asks of a request, where a stream differs from a connection

    def isSecure(self):
        return self.channel.isSecure()

    def registerProducer(self, producer, streaming):
        """The stream is the consumer: it pauses the producer when the client's window or
        the connection's send buffer is full."""
        self.producer = producer
        self.channel.registerProducer(producer, streaming)

    def unregisterProducer(self):
        if self.producer is None:
            return
        self.producer = None
        self.channel.unregisterProducer()

    def loseConnection(self):
        """End this stream as it is (Twisted's H2Stream.loseConnection); the connection and
        its other streams go on."""
        self.channel.loseConnection()

    # The response

    def write(self, data):
        if self.finished:
            raise RuntimeError("write called on a request after finish")
        if self._disconnected:
            return
        if not self.startedWriting:
            self.startedWriting = True
            self._send_head()
        if self._no_body or not data:
            return
        self.sentLength += len(data)
        self.channel.write(data)

    def _send_head(self):
        fields = self.responseHeaders.fields
        code = self.code
        self._no_body = self.method == b"HEAD" or code in NO_BODY_CODES
        add_default_fields(fields, code)
        self.channel.writeHeaders(self.clientproto, b"%d" % code, None, self.responseHeaders)

    def _tell_done(self, stream):
        """The response is complete: the stream ends (END_STREAM after what is queued)."""
        stream.requestDone(self)
