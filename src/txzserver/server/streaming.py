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

from ..transfer import StallTimer, close_body
from .errors import peer_of
from .http1 import HTTP1Channel
from .llhttp1 import LLHTTP1Channel
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
    when the body is finished, the client went away, or reading failed. With ``stall``
    (clock, seconds) the connection is aborted once the client took nothing for that long
    (HTTP/1.1, whose idle timeout Twisted suspends while a response is sent).
    """

    def __init__(self, request, body, length, chunk_size, done, stall=None):
        self.request = request
        self.body = body
        self.remaining = length
        self.chunk_size = chunk_size
        self.sent = 0
        self._read = chunk_reader(body, chunk_size)
        self._done = done
        self._finished = False
        self.stopped = False
        self._stall = stall
        self._timer = None

    def start(self):
        if self._stall is not None:
            self._timer = StallTimer(*self._stall, self._stalled)
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
        if self._timer is not None:
            self._timer.progress()  # resumed: the previous buffer went out
        self.request.write(data)

    def stopProducing(self):
        """The consumer went away (client disconnected): not an error of ours."""
        self.stopped = True
        self._finish(error=True)

    # Helpers

    def _stalled(self):
        transport = self.request.channel.transport if self.request.channel is not None else None
        log.info("closing the connection of {peer}: it took no byte of its response for"
                 " {timeout:g} seconds (idle-timeout), {left} bytes unsent",
                 peer=peer_of(transport), timeout=self._stall[1], left=self.remaining)
        if transport is not None:
            transport.abortConnection()

    def _finish(self, error=False):
        if self._finished:
            return
        self._finished = True
        if self._timer is not None:
            self._timer.stop()
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
        # HTTP/2 has an idle timeout of its own for streams the client takes nothing of.
        stall = (clock, settings.idle_timeout) if _http1_channel(request) else None
        producer = BodyProducer(request, body, length, settings.stream_chunk_size, done, stall)
    producer.start()
    return producer


def _sendfile_producer(request, body, length, settings, clock, done):
    channel = _http1_channel(request)
    if not length or request.method == b"HEAD" or channel is None:
        return None
    source = file_source(body)
    if source is None:
        return None
    request.write(b"")  # the head, if not sent yet: it decides on chunked framing
    if request.chunked or request.code in NO_BODY_CODES:
        return None
    transport = channel.lend_plain_transport()
    if transport is None:
        return None

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


def _http1_channel(request):
    """The HTTP/1.1 connection of ``request``; None for HTTP/2 streams and test doubles."""
    protocol = getattr(request, "protocol", None)
    return protocol if isinstance(protocol, (HTTP1Channel, LLHTTP1Channel)) else None
