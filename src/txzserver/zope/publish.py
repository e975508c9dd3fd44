"""The WSGI application txzserver publishes: Zope's publish_module, with streamed writes.

Zope's WSGI publisher collects ``RESPONSE.write()`` output (OFS File/Image send large
files that way, chunk by chunk) in a BytesIO, so a 1 GB OFS File would sit in memory.
Here that buffer spills to a temporary file above a threshold, and the spilled file is
handed to the reactor to stream like a blob.

A request path that is not UTF-8 once unquoted (``/%c0%af``, an overlong "/") made
publish_module raise UnicodeDecodeError, a 500 and a traceback; it gets 400 Bad Request
(RFC 9110 15.5.1; Zope's paths are UTF-8, RFC 3986 2.5). Test:
``test_hostile_path_serves_nothing_outside_zope`` (tests/integration/test_http1_hostile.py).
"""

import functools
import tempfile

from zExceptions import BadRequest
from ZPublisher.HTTPResponse import WSGIResponse
from ZPublisher.WSGIPublisher import publish_module
from ZPublisher.httpexceptions import HTTPExceptionHandler

from ..server.streaming import StreamBody

#: RESPONSE.write() output kept in memory before it spills to a temporary file.
SPOOL_THRESHOLD = 1 << 20


class SpooledStdout(tempfile.SpooledTemporaryFile):
    """A response stdout whose ``getvalue()`` is bytes, or a StreamBody once spilled."""

    def __init__(self, max_size=SPOOL_THRESHOLD):
        super().__init__(max_size=max_size, prefix="txzserver-response-")

    def getvalue(self):
        if not self._rolled:
            return self._file.getvalue()
        self.seek(0)
        return StreamBody(self)


def spooling_response(stderr=None, **ignored):
    """``_response_factory`` for publish_module: a WSGIResponse writing to SpooledStdout
    (whatever ``stdout`` publish_module offers)."""
    return WSGIResponse(stdout=SpooledStdout(), stderr=stderr)


def utf8_paths_only(app):
    """``app`` for requests whose PATH_INFO (latin-1, PEP 3333) is UTF-8; BadRequest (400,
    by HTTPExceptionHandler) for the others, which publish_module fails to decode."""
    @functools.wraps(app)
    def application(environ, start_response):
        try:
            environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise BadRequest("the request path is not UTF-8") from None
        return app(environ, start_response)
    return application


def make_app():
    """Zope's publish_module behind its HTTP exception middleware (as in zope.ini)."""
    return HTTPExceptionHandler(utf8_paths_only(
        functools.partial(publish_module, _response_factory=spooling_response)))
