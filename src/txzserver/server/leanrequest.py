"""The request of the llhttp HTTP/1.1 channel: what the publisher and the response writer need.

Twisted's ``Request`` builds two ``Headers`` (each name and value encoded and checked again
on every call), a Deferred list, cookies, sessions and a content-type default for every
request; its response head goes out through ``Headers`` once more. This one keeps the
fields as the parser gave them (lower-case names), offers the part of Twisted's request API
that ``ZopeResource``, ``PublishTask``, streaming, the WebSocket hand-off and the access log
use, and writes the response head with the first body bytes in one transport write.
Reactor thread only.
"""

import io
import time

from twisted.internet._producer_helpers import _PullToPush
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import NO_BODY_CODES, RESPONSES
from twisted.web.server import NOT_DONE_YET

from .environ import SERVER_SOFTWARE
from .request import BodyLimits

log = Logger()

#: Twisted internals this module relies on (checked by a unit test): the adapter that
#: Twisted's HTTPChannel and TLS wrap pull producers in, so that they are driven by the
#: cooperator as with Twisted's channel.
PRIVATE_TWISTED_NAMES = ("_producer_helpers._PullToPush",)

#: Header names as written (``Content-Type``), by their lower-case form; filled as they come.
_CANONICAL = {}
_date_cache = (None, b"")
#: Body bytes written with the response head in one string (larger ones are not copied).
SMALL_BODY = 64 * 1024


def canonical_name(name: bytes) -> bytes:
    """``content-type`` -> ``Content-Type`` (as Twisted writes names), computed once a name."""
    try:
        return _CANONICAL[name]
    except KeyError:
        pass
    value = b"-".join(part.capitalize() for part in name.split(b"-"))
    if len(_CANONICAL) < 1024:
        _CANONICAL[name] = value
    return value


def http_date(now=None):
    """The IMF-fixdate of now (RFC 9110 5.6.7), formatted once per second."""
    global _date_cache
    second = int(time.time() if now is None else now)
    if _date_cache[0] != second:
        _date_cache = (second, time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                             time.gmtime(second)).encode("ascii"))
    return _date_cache[1]


_SERVER = SERVER_SOFTWARE.encode()


def add_default_fields(fields, code):
    """Date, Server and Content-Type (text/html, Twisted's default) where the response
    ``fields`` ({lower-case name: [values]}) have none."""
    if b"date" not in fields:
        fields[b"date"] = [http_date()]
    if b"server" not in fields:
        fields[b"server"] = [_SERVER]
    if b"content-type" not in fields and code not in NO_BODY_CODES:
        fields[b"content-type"] = [b"text/html"]


class RawHeaders:
    """Header fields by lower-case name, values as received: the part of Twisted's ``Headers``
    the server uses, without its encoding and validation round trips."""

    __slots__ = ("fields",)

    def __init__(self):
        self.fields = {}

    def add(self, name, value):
        """Append ``value`` to the lower-case ``name``'s values."""
        values = self.fields.get(name)
        if values is None:
            self.fields[name] = [value]
        else:
            values.append(value)

    def hasHeader(self, name):
        return name.lower() in self.fields

    def getRawHeaders(self, name, default=None):
        return self.fields.get(name.lower(), default)

    def setRawHeaders(self, name, values):
        self.fields[name.lower()] = list(values)

    def addRawHeader(self, name, value):
        self.add(name.lower(), value)

    def removeHeader(self, name):
        self.fields.pop(name.lower(), None)

    def getAllRawHeaders(self):
        return self.fields.items()


class LeanRequest(BodyLimits):
    """One HTTP/1.1 request of an ``llhttp1.LLHTTP1Channel`` and its response.

    ``channel`` (also ``protocol``) is the connection: it writes, closes, and is told when
    the response is complete (``request_done``). ``persistent`` says whether the connection
    stays open after the response (HTTP/1.1 without ``Connection: close``).
    """

    code = 200
    code_message = None
    sentLength = 0
    chunked = False
    startedWriting = False
    finished = False
    remote_user = None
    producer = None
    _pusher = None
    content = None
    _disconnected = False
    _notifications = None
    _no_body = False
    #: Expect: 100-continue, to answer once the requests before this one are answered
    continue_owed = False

    def __init__(self, channel, method, uri, version, headers, settings, persistent):
        self.channel = self.protocol = channel
        self.settings = settings
        self.method = method
        self.uri = uri
        self.path = uri.partition(b"?")[0]
        self.clientproto = version
        self.requestHeaders = headers
        self.responseHeaders = RawHeaders()
        self.persistent = persistent
        self.started = self.clock()

    # What the publisher and the resources ask of a request

    def getHeader(self, name):
        values = self.requestHeaders.fields.get(name.lower())
        return values[-1] if values else None

    def setHeader(self, name, value):
        self.responseHeaders.fields[name.lower()] = [value]

    def set_response_headers(self, fields):
        """The app's response fields ({lower-case name: [values]}), taken as they are."""
        self.responseHeaders.fields = fields

    def setResponseCode(self, code, message=None):
        self.code = int(code)
        self.code_message = message

    def getHost(self):
        return self.channel.getHost()

    def getClientAddress(self):
        return self.channel.getPeer()

    def isSecure(self):
        return self.channel.secure

    def notifyFinish(self):
        """A Deferred fired with None once the response is complete, or failed with the
        reason when the connection is lost first."""
        if self.finished:
            return succeed(None)
        if self._disconnected:
            return fail(self._lost_reason)
        d = Deferred()
        if self._notifications is None:
            self._notifications = [d]
        else:
            self._notifications.append(d)
        return d

    def registerProducer(self, producer, streaming):
        """Register ``producer`` with the transport; a pull producer is driven by Twisted's
        cooperator while the transport takes its output, as Twisted's channel does."""
        transport = self.channel.transport
        if transport is None:
            producer.stopProducing()
            return
        self.producer = producer
        if streaming:
            transport.registerProducer(producer, True)
            return
        self._pusher = _PullToPush(producer, self)
        transport.registerProducer(self._pusher, True)
        self._pusher.startStreaming()

    def unregisterProducer(self):
        if self.producer is None:
            return
        self.producer = None
        pusher, self._pusher = self._pusher, None
        if pusher is not None:
            pusher.stopStreaming()
        transport = self.channel.transport
        if transport is not None:
            transport.unregisterProducer()

    def loseConnection(self):
        self.channel.loseConnection()

    # Processing: the site's one resource renders it (every path goes to Zope)

    def process(self):
        resource = self.channel.site.resource
        try:
            body = resource.render(self)
        except Exception:
            log.failure("rendering {uri} failed", uri=self.uri)
            if self.startedWriting or self._disconnected:
                self.loseConnection()
                return
            self.responseHeaders = RawHeaders()
            self.setResponseCode(500)
            self.setHeader(b"content-type", b"text/plain; charset=utf-8")
            body = b"Internal Server Error: the server could not render this request.\n"
        if body is NOT_DONE_YET:
            return
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()

    # The response

    def _head(self):
        """The response head, and whether its body is chunked or absent."""
        fields = self.responseHeaders.fields
        code = self.code
        no_body = self.method == b"HEAD" or code in NO_BODY_CODES
        if b"content-length" not in fields and not no_body:
            if self.clientproto == b"HTTP/1.1":
                fields[b"transfer-encoding"] = [b"chunked"]
                self.chunked = True
        add_default_fields(fields, code)
        if not self.persistent and self.clientproto == b"HTTP/1.1":
            fields[b"connection"] = [b"close"]
        reason = self.code_message or RESPONSES.get(code, b"Unknown Status")
        lines = [b"%s %d %s\r\n" % (self.clientproto, code, reason)]
        count = 1
        for name, values in fields.items():
            name = canonical_name(name)
            for value in values:
                lines.append(b"%s: %s\r\n" % (name, value))
                count += 1
        lines.append(b"\r\n")
        head = b"".join(lines)
        if head.count(b"\n") != count + 1 or head.count(b"\r") != count + 1:
            head = self._sanitized_head(lines[0], fields)
        self._no_body = no_body
        return head

    @staticmethod
    def _sanitized_head(status_line, fields):
        """The head with CR and LF in field values replaced by spaces, as Twisted's Headers
        does: a value from the app cannot add a header (response splitting)."""
        lines = [status_line]
        for name, values in fields.items():
            name = canonical_name(name.replace(b"\r", b"").replace(b"\n", b"").replace(b":", b""))
            for value in values:
                value = value.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ")
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        return b"".join(lines)

    def write(self, data):
        if self.finished:
            raise RuntimeError("write called on a request after finish")
        if self._disconnected:
            return
        if not self.startedWriting:
            self.startedWriting = True
            head = self._head()
            if self._no_body or not data:
                self.channel.write(head)
                return
            self.sentLength += len(data)
            if self.chunked:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            if len(data) <= SMALL_BODY:
                self.channel.write(head + data)
            else:
                self.channel.write(head)
                self.channel.write(data)
            return
        if self._no_body or not data:
            return
        self.sentLength += len(data)
        if self.chunked:
            self.channel.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.channel.write(data)

    def finish(self):
        if self._disconnected:
            raise RuntimeError("finish called on a request after its connection was lost")
        if self.finished:
            return
        if not self.startedWriting:
            self.write(b"")
        if self.chunked and not self._no_body:
            self.channel.write(b"0\r\n\r\n")
        self.finished = True
        site = self.channel.site
        if site is not None:
            site.log(self)
        channel = self.channel
        self._cleanup()
        self._tell_done(channel)
        self._notify(None)

    def _tell_done(self, channel):
        """Tell ``channel`` the response is complete (the next request may be read)."""
        channel.request_done(self)

    # The connection's side

    def connectionLost(self, reason):
        """The connection closed before the response was complete."""
        self._disconnected = True
        self._lost_reason = reason if isinstance(reason, Failure) else Failure(reason)
        if self.producer is not None:
            producer, pusher = self.producer, self._pusher
            self.producer = self._pusher = None
            if pusher is not None:
                pusher.stopStreaming()
            producer.stopProducing()
        self._cleanup()
        self._notify(self._lost_reason)

    def _cleanup(self):
        content = self.content
        if content is not None and not isinstance(content, io.BytesIO):
            try:
                content.close()
            except OSError:
                pass

    def _notify(self, failure):
        notifications, self._notifications = self._notifications, None
        for d in notifications or ():
            if failure is None:
                d.callback(None)
            else:
                d.errback(failure)
