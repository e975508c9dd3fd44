"""Send file and blob bodies from the reactor, one buffer per request for more data.

The worker thread hands the open file (or Zope stream iterator) over and is free again
before the first byte goes out; the transport pulls the next buffer only when it has sent
the previous one, so a slow reader costs one buffer of memory, not a thread.
"""

from zope.interface import implementer
from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger

from ..transfer import close_body

log = Logger()


class StreamBody:
    """``wsgi.file_wrapper``: marks a file-like response body for streaming from the reactor.

    It is still a valid WSGI iterable, so WSGI middleware that iterates it keeps working.
    """

    def __init__(self, filelike, block_size=256 * 1024):
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self):
        return iter(lambda: self.filelike.read(self.block_size), b"")

    def close(self):
        close_body(self.filelike, quietly=False)



def chunk_reader(body, chunk_size):
    """Return ``read(n)`` for a body: a file's read, or an adapter over an iterator.

    Zope stream iterators without ``read`` are consumed with ``next`` and re-cut to ``n``.
    """
    if isinstance(body, StreamBody):
        body = body.filelike
    if hasattr(body, "read"):
        return body.read
    iterator = iter(body)
    pending = bytearray()

    def read(n):
        while len(pending) < n:
            chunk = next(iterator, None)
            if chunk is None:
                break
            pending.extend(chunk)
        data = bytes(pending[:n])
        del pending[:n]
        return data

    return read


@implementer(IPullProducer)
class BodyProducer:
    """Pull producer writing ``body`` to ``request``, at most ``length`` bytes if given.

    Capping at Content-Length matters: plone.namedfile's range iterator ignores its end
    when read with ``read()``. Reactor thread only. ``done`` fires (with the bytes sent)
    when the body is finished, the client went away, or reading failed.
    """

    def __init__(self, request, body, length, chunk_size, done):
        self.request = request
        self.body = body
        self.remaining = length
        self.chunk_size = chunk_size
        self.sent = 0
        self._read = chunk_reader(body, chunk_size)
        self._done = done
        self._finished = False
        self.stopped = False

    def start(self):
        self.request.registerProducer(self, False)

    # IPullProducer

    def resumeProducing(self):
        if self._finished:
            return
        size = self.chunk_size if self.remaining is None else min(self.chunk_size, self.remaining)
        try:
            data = self._read(size) if size > 0 else b""
        except Exception:
            log.failure("reading a streamed response body failed")
            self._finish(error=True)
            return
        if not data:
            self._finish()
            return
        self.sent += len(data)
        if self.remaining is not None:
            self.remaining -= len(data)
        self.request.write(data)

    def stopProducing(self):
        """The consumer went away (client disconnected): not an error of ours."""
        self.stopped = True
        self._finish(error=True)

    # Helpers

    def _finish(self, error=False):
        if self._finished:
            return
        self._finished = True
        close_body(self.body)
        self._done(self, error)
