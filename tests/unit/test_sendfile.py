"""txzserver.server.sendfile and streaming.file_source: the os.sendfile producer's states.

No sockets: the "socket" is the write end of a non-blocking pipe (os.sendfile writes to any
descriptor on Linux), so a full pipe is the client that does not read (EAGAIN) and a closed
read end the client that went away (EPIPE). The transport is a stand-in recording what the
producer asks of it; the test calls resumeProducing where Twisted's doWrite would.
"""

import io
import os
import tempfile

import pytest
from plone.namedfile.utils import filestream_range_iterator
from twisted.internet.interfaces import IPullProducer
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject
from ZPublisher.Iterators import filestream_iterator

from txzserver.server.sendfile import SendfileProducer
from txzserver.server.streaming import BodyProducer, StreamBody, file_source, stream_body

from .helpers import make_settings

pytestmark = pytest.mark.usefixtures("each_http1_parser")

IDLE = 5.0


class PipeTransport:
    """What SendfileProducer uses of a TCP transport, over a non-blocking pipe."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.producer = None
        self.streaming = None
        self.writing = 0
        self.aborted = False

    def fileno(self):
        return self.write_fd

    def registerProducer(self, producer, streaming):
        assert self.producer is None
        self.producer, self.streaming = producer, streaming
        if not streaming:
            producer.resumeProducing()

    def unregisterProducer(self):
        self.producer = None

    def startWriting(self):
        self.writing += 1

    def abortConnection(self):
        self.aborted = True

    def getPeer(self):
        raise OSError("no peer: a pipe")

    def drain(self):
        """Read what the pipe holds (the client reading)."""
        data = b""
        os.set_blocking(self.read_fd, False)
        while True:
            try:
                chunk = os.read(self.read_fd, 1 << 20)
            except BlockingIOError:
                return data
            if not chunk:
                return data
            data += chunk

    def close(self):
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pipe():
    transport = PipeTransport()
    yield transport
    transport.close()


@pytest.fixture
def blob(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than a pipe holds (1 MiB at most unprivileged)
    path = tmp_path / "blob"
    path.write_bytes(data)
    f = open(path, "rb", buffering=0)
    yield f, data
    f.close()


def make(transport, f, offset, length, clock=None):
    calls = []
    producer = SendfileProducer(transport, f.fileno(), offset, length, clock or Clock(), IDLE,
                                lambda p, error: calls.append(error))
    return producer, calls


def pump(transport, producer, calls, limit=1000):
    """Alternate the client reading and the transport resuming until the producer is done."""
    received = b""
    for _ in range(limit):
        if calls:
            break
        received += transport.drain()
        producer.resumeProducing()
    return received + transport.drain()


def test_provides_ipullproducer(pipe, blob):
    producer, _ = make(pipe, blob[0], 0, 10)
    assert verifyObject(IPullProducer, producer)


def test_registering_sends_nothing_until_the_transport_resumes(pipe, blob):
    """registerProducer resumes a pull producer at once, while the head may still be in
    the transport's buffer: then it only asks to be called when the socket is writable."""
    producer, calls = make(pipe, blob[0], 0, 100)
    producer.start()
    assert pipe.producer is producer and pipe.streaming is False
    assert pipe.writing == 1
    assert producer.sent == 0 and pipe.drain() == b""
    assert calls == []


def test_sends_the_region_only_and_unregisters(pipe, blob):
    f, data = blob
    offset, length = 1000, len(data) - 5000
    producer, calls = make(pipe, f, offset, length)
    producer.start()
    received = pump(pipe, producer, calls)
    assert received == data[offset:offset + length]
    assert calls == [False]
    assert producer.sent == length and producer.remaining == 0 and not producer.stopped
    assert pipe.producer is None


def test_full_socket_waits_for_writability(pipe, blob):
    """The client reads nothing: one resume fills the pipe and asks to be woken; the next
    (a spurious wake-up) sends nothing more and blocks nothing."""
    f, data = blob
    producer, calls = make(pipe, f, 0, len(data))
    producer.start()
    producer.resumeProducing()
    sent = producer.sent
    assert 0 < sent < len(data)
    assert pipe.writing == 2
    producer.resumeProducing()
    assert producer.sent == sent
    assert pipe.writing == 3
    assert calls == []


def test_idle_timeout_aborts_a_client_that_takes_nothing(pipe, blob):
    f, data = blob
    clock = Clock()
    producer, calls = make(pipe, f, 0, len(data), clock)
    producer.start()
    producer.resumeProducing()  # the pipe is full now
    clock.advance(IDLE - 0.5)
    pipe.drain()
    producer.resumeProducing()  # progress: the timer starts again
    clock.advance(IDLE - 0.5)
    assert not pipe.aborted
    producer.resumeProducing()  # no progress: the pipe is still full
    clock.advance(0.5)
    assert pipe.aborted
    producer.stopProducing()  # what the transport does once the abort has closed it
    assert calls == [True] and producer.stopped
    assert clock.getDelayedCalls() == []


def test_file_shorter_than_length_is_an_error(pipe, blob):
    f, data = blob
    producer, calls = make(pipe, f, len(data) - 10, 100)
    producer.start()
    received = pump(pipe, producer, calls)
    assert received == data[-10:]
    assert calls == [True]
    assert not producer.stopped and producer.remaining == 90


def test_client_gone_is_stopped_not_failed(pipe, blob):
    f, data = blob
    producer, calls = make(pipe, f, 0, len(data))
    producer.start()
    os.close(pipe.read_fd)
    producer.resumeProducing()  # EPIPE
    assert calls == [True] and producer.stopped
    assert pipe.producer is None


def test_client_gone_aborts_the_connection(pipe, blob):
    """sendfile took the error, not the transport, which may neither write nor read again
    (the channel stops reading while a pipelined request waits): it is aborted, so that it
    closes the socket and the connection gives its slot back."""
    f, data = blob
    producer, calls = make(pipe, f, 0, len(data))
    producer.start()
    producer.resumeProducing()  # the first turn goes out
    os.close(pipe.read_fd)
    producer.resumeProducing()  # EPIPE
    assert pipe.aborted
    assert calls == [True] and producer.stopped


def test_stop_producing_finishes_once(pipe, blob):
    clock = Clock()
    producer, calls = make(pipe, blob[0], 0, 100, clock)
    producer.start()
    producer.stopProducing()
    producer.stopProducing()
    producer.resumeProducing()
    assert calls == [True]
    assert clock.getDelayedCalls() == []
    assert pipe.drain() == b""


# file_source: which bodies are regular files, and where they are read next

def test_file_source_of_files_and_iterators(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    with open(path, "rb", buffering=0) as raw:
        raw.seek(3)
        assert file_source(raw) == (raw.fileno(), 3)
        assert file_source(StreamBody(raw)) == (raw.fileno(), 3)
    zope = filestream_iterator(str(path), "rb")
    assert file_source(zope) == (zope.fileno(), 0)
    zope.close()
    ranged = filestream_range_iterator(str(path), "rb", start=4, end=8)
    fd, offset = file_source(StreamBody(ranged))
    assert offset == 4 and os.pread(fd, 4, offset) == b"4567"
    ranged.close()


def test_file_source_of_buffered_spooled_file_flushes_it():
    spooled = tempfile.SpooledTemporaryFile(max_size=4)
    spooled.write(b"small")  # past max_size: rolled over to a real file
    spooled.write(b" then more")
    spooled.seek(0)
    fd, offset = file_source(StreamBody(spooled))
    assert os.pread(fd, 100, offset) == b"small then more"
    spooled.close()


def test_file_source_refuses_what_is_not_a_regular_file():
    in_memory = tempfile.SpooledTemporaryFile(max_size=100)
    in_memory.write(b"abc")
    assert file_source(StreamBody(in_memory)) is None
    assert in_memory._rolled is False  # and it was not written to disk to find out
    assert file_source(io.BytesIO(b"x")) is None
    assert file_source(iter([b"x"])) is None
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as fifo:
        assert file_source(fifo) is None
    os.close(write_fd)
    closed = io.FileIO(os.devnull)
    closed.close()
    assert file_source(closed) is None


def test_stream_body_without_a_lending_connection_reads_buffers(tmp_path):
    """A request whose connection lends no plain TCP transport (TLS, HTTP/2, a test double)
    is sent by the BodyProducer."""
    path = tmp_path / "f"
    path.write_bytes(b"z" * 4000)
    request = DummyRequest([])
    calls = []

    def done(producer, error):
        calls.append(error)
        request.unregisterProducer()

    producer = stream_body(request, StreamBody(open(path, "rb")), 4000,
                           make_settings(stream_chunk_size=1024), Clock(), done)
    assert isinstance(producer, BodyProducer)
    assert b"".join(request.written) == b"z" * 4000
    assert calls == [False]
