"""Request body limits (413 early, small bodies in memory, large ones spooled) and the
Twisted Request that uses them."""

import io
import tempfile
import time

from twisted.logger import Logger
from twisted.web import server

log = Logger()

#: Seconds a client refused for a full spool (max-spool-size) is told to wait: long enough for
#: a running upload of a few hundred MB to finish on a LAN.
SPOOL_RETRY_AFTER = 10

#: Cookies that carry Plone credentials (PAS session, plone.restapi/Volto JWT).
CREDENTIAL_COOKIES = frozenset({b"__ac", b"auth_token"})


def has_credentials(headers):
    """Whether a request says who it is (Authorization, or a login cookie); Zope decides
    later whether it is right, but one without any is anonymous for certain."""
    if headers.hasHeader(b"authorization"):
        return True
    for value in headers.getRawHeaders(b"cookie", ()):
        for pair in value.split(b";"):
            if pair.partition(b"=")[0].strip() in CREDENTIAL_COOKIES:
                return True
    return False


def _write_all(spool, data):
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[spool.write(view):]


class BodyLimits:
    """A request body limited and spooled according to the request's ``settings``.

    Twisted keeps any body of unknown length or above 100 kB in a temporary file; we do
    the same with a configurable threshold and refuse bodies above max-request-body-size
    as soon as the declared length (or the bytes received) says so. Shared by the Twisted
    request (``ZopeRequest``), the lean HTTP/1.1 one (``leanrequest.LeanRequest``) and the
    HTTP/2 and HTTP/3 one built on it (``h2request.H2Request``): the
    class using it has ``settings``, ``requestHeaders``, ``content``, ``channel``,
    ``protocol`` (which knows how to refuse the request) and ``notifyFinish``.
    Reactor thread only.
    """

    _body_received = 0
    _rejected = False
    _reserved = 0  # bytes of the process's SpoolBudget this body holds
    _limit = None  # the body limit that applies to this request, and its key
    #: Monotonic clock of ``duration`` (tests replace it).
    clock = staticmethod(time.monotonic)

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

    def reject(self, code, reason, headers=()):
        """Answer ``code`` now, while the request is still being received."""
        if self.channel is not None:
            self.protocol.reject_request(self, code, reason, headers)

    def body_limit(self):
        """(bytes, key) of the limit for this request's body; (0, key) means none.

        Called once every header is known (HTTP/1.1: gotLength; HTTP/2: the channel passes
        content-length last). A request without credentials gets the lower anonymous limit:
        its body is spooled before Zope knows who sent it.
        """
        if self._limit is None:
            limit, key = self.settings.max_request_body_size, "max-request-body-size"
            anonymous = self.settings.max_anonymous_body_size
            if anonymous and (not limit or anonymous < limit) \
                    and not has_credentials(self.requestHeaders):
                limit, key = anonymous, "max-anonymous-body-size"
            self._limit = (limit, key)
        return self._limit

    def gotLength(self, length):
        if length == 0:  # no body: nothing to limit or spool
            self.content = io.BytesIO()
            return
        limit, _ = self.body_limit()
        if limit and length is not None and length > limit:
            self.content = io.BytesIO()
            self._reject_body(length)
            return
        if length is not None and length <= self.settings.request_spool_threshold:
            self.content = io.BytesIO()
            return
        if length is not None and not self._reserve(length):
            self.content = io.BytesIO()
            return
        # Unbuffered: a full disk shows at the write that fails, not at some later flush.
        self.content = tempfile.TemporaryFile(prefix="txzserver-body-", buffering=0)

    def handleContentChunk(self, data):
        if self._rejected:
            return
        self._body_received += len(data)
        limit, _ = self.body_limit()
        if limit and self._body_received > limit:
            self._reject_body(self._body_received)
            return
        if self._body_received > self._reserved and not isinstance(self.content, io.BytesIO):
            # a body of unknown length takes its share as it grows
            if not self._reserve(self._body_received - self._reserved):
                return
        try:
            _write_all(self.content, data)
        except OSError as exc:
            self._spool_failed(exc)

    def _spool_budget(self):
        """The process's SpoolBudget, held by the listener's site (None: no cap)."""
        return getattr(getattr(self.protocol, "site", None), "spool", None)

    def _reserve(self, size):
        """Take ``size`` more bytes of the spool budget; False after answering 503."""
        budget = self._spool_budget()
        if budget is None:
            return True
        if not budget.take(size):
            self._rejected = True
            log.warn("refused a request body of {size} bytes: {used} of {limit} bytes are spooled"
                     " already (max-spool-size)", size=size, used=budget.used, limit=budget.limit)
            if isinstance(self.content, io.IOBase) and not isinstance(self.content, io.BytesIO):
                self.content.close()
            self.content = io.BytesIO()
            self.reject(503, f"the server is receiving too many request bodies at once ({budget.used}"
                             f" bytes spooled, max-spool-size {budget.limit}); try again later",
                        headers=((b"retry-after", b"%d" % SPOOL_RETRY_AFTER),))
            return False
        if not self._reserved:
            self.notifyFinish().addBoth(self._release, budget)
        self._reserved += size
        return True

    def _release(self, result, budget):
        """The response is done or the client gone: Twisted closes the spool file now."""
        budget.give(self._reserved)
        self._reserved = 0

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
        limit, key = self.body_limit()
        anonymous = " for a request without credentials" if key == "max-anonymous-body-size" else ""
        self.reject(413, f"request body of {size} bytes or more exceeds the limit of {limit} bytes"
                          f"{anonymous} ({key})")



class ZopeRequest(BodyLimits, server.Request):
    """Twisted's request with our body limits (``BodyLimits``). ``protocol`` is the
    connection that made the request (``HTTP1Channel`` or ``H2Channel``)."""

    def __init__(self, channel, queued=None, *, settings, protocol=None):
        super().__init__(channel)
        self.settings = settings
        self.protocol = protocol if protocol is not None else channel
        #: Made at the request line (HTTP/1.1) or its HEADERS (HTTP/2).
        self.started = self.clock()

    def set_response_headers(self, fields):
        """The app's response fields ({lower-case name: [values]}) replace the defaults
        (Twisted's Server, its text/html Content-Type); its Date stays unless given."""
        headers = self.responseHeaders
        headers.removeHeader(b"content-type")
        for name, values in fields.items():
            headers.setRawHeaders(name, values)

    def requestReceived(self, command, path, version):
        if self._rejected:
            return
        super().requestReceived(command, path, version)
