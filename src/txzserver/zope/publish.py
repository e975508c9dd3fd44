"""The WSGI application txzserver publishes: Zope's publish_module, with streamed writes.

Zope's WSGI publisher collects ``RESPONSE.write()`` output (OFS File/Image send large
files that way, chunk by chunk) in a BytesIO, so a 1 GB OFS File would sit in memory.
Here that buffer spills to a temporary file above a threshold, and the spilled file is
handed to the reactor to stream like a blob.
"""

import functools
import tempfile

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


def make_app():
    """Zope's publish_module behind its HTTP exception middleware (as in zope.ini)."""
    return HTTPExceptionHandler(functools.partial(publish_module,
                                                  _response_factory=spooling_response))
