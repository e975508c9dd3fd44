"""Send file and blob bodies from the reactor, one buffer per request for more data.

The worker thread hands the open file (or Zope stream iterator) over and is free again
before the first byte goes out; the transport pulls the next buffer only when it has sent
the previous one, so a slow reader costs one buffer of memory, not a thread. Over plain
TCP (HTTP/1.1 without TLS) a body that is a regular file goes out with ``os.sendfile``
instead (``sendfile.SendfileProducer``): no copy through Python at all.
"""

import io
import os
import stat
import tempfile

from zope.interface import implementer
from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger
from twisted.web.http import NO_BODY_CODES

from ..transfer import close_body
from .sendfile import SendfileProducer

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


def file_source(body):
    """``(fd, offset)`` of the regular file ``body`` reads next from, or None.

    Bodies seen: a StreamBody around a file (Zope hands blobs to ``wsgi.file_wrapper``, and
    spilled ``RESPONSE.write`` output is one), Zope's ``filestream_iterator`` (a FileIO),
    plone.namedfile's ``filestream_range_iterator``, which keeps its FileIO in ``_io`` and
    has no accessor for it (its end is kept by Content-Length, set to the range's length).
    """
    if isinstance(body, StreamBody):
        body = body.filelike
    if isinstance(getattr(body, "_io", None), io.FileIO):
        body = body._io
    if isinstance(body, tempfile.SpooledTemporaryFile) and not body._rolled:
        return None  # still in memory: fileno() would write it to disk first
    if not callable(getattr(body, "fileno", None)) or not callable(getattr(body, "tell", None)):
        return None
    try:
        if callable(getattr(body, "flush", None)):
            body.flush()  # a buffered file's bytes reach the descriptor before it is read
        fd, offset = body.fileno(), body.tell()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except (OSError, ValueError):  # closed, or a file object without a descriptor
        return None
    return fd, offset


def stream_body(request, body, length, settings, clock, done):
    """Send ``body`` (at most ``length`` bytes) as the rest of ``request``'s response.

    With os.sendfile when the body is a regular file of known length and the request's
    connection lends its plain TCP transport (``lend_plain_transport``: HTTP/1.1 without
    TLS); else with a BodyProducer reading ``stream_chunk_size`` buffers. ``done(producer,
    error)`` as BodyProducer's, after the body is closed.
    """
    producer = _sendfile_producer(request, body, length, settings, clock, done)
    if producer is None:
        producer = BodyProducer(request, body, length, settings.stream_chunk_size, done)
    producer.start()
    return producer


def _sendfile_producer(request, body, length, settings, clock, done):
    if not length or request.method == b"HEAD":
        return None
    lend = getattr(getattr(request, "protocol", None), "lend_plain_transport", None)
    source = file_source(body) if lend is not None else None
    if source is None:
        return None
    request.write(b"")  # the head, if not sent yet: it decides on chunked framing
    if request.chunked or request.code in NO_BODY_CODES:
        return None
    transport = lend()
    if transport is None:
        return None
    channel = request.protocol

    def finished(producer, error):
        request.sentLength += producer.sent  # counted by the access log and the metrics
        close_body(body)
        if not producer.stopped:
            channel.take_back_transport()
        done(producer, error)

    fd, offset = source
    producer = SendfileProducer(transport, fd, offset, length, clock, settings.idle_timeout,
                                finished)
    # The channel may close the connection without the transport telling its producer.
    request.notifyFinish().addErrback(lambda _: producer.stopProducing())
    return producer
