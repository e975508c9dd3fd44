"""txzserver.server.streaming: the pull producer that sends files and blobs from the reactor."""

import io

import pytest
from twisted.internet.task import Clock
from twisted.internet.interfaces import IPullProducer
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from txzserver.server.streaming import BodyProducer, StreamBody, chunk_reader

pytestmark = pytest.mark.usefixtures("each_http1_parser")


class TrackedFile(io.BytesIO):
    """A file that records the sizes asked for and whether it was closed."""

    def __init__(self, data):
        super().__init__(data)
        self.reads = []
        self.was_closed = False

    def read(self, n=-1):
        self.reads.append(n)
        return super().read(n)

    def close(self):
        self.was_closed = True
        self.position_at_close = self.tell()
        super().close()


class IteratorBody:
    """A Zope stream iterator without ``read``: only ``__iter__``/``__next__`` and close."""

    def __init__(self, chunks):
        self._chunks = list(chunks)
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        if not self._chunks:
            raise StopIteration
        return self._chunks.pop(0)

    def close(self):
        self.closed = True


class Done:
    def __init__(self, request):
        self.request = request
        self.calls = []

    def __call__(self, producer, error):
        self.calls.append((producer, error))
        self.request.unregisterProducer()


def run(body, length, chunk_size=16):
    request = DummyRequest([])
    done = Done(request)
    producer = BodyProducer(request, body, length, chunk_size, done)
    producer.start()
    return request, producer, done


def test_provides_ipullproducer():
    producer = BodyProducer(DummyRequest([]), io.BytesIO(b""), None, 16, lambda p, e: None)
    assert verifyObject(IPullProducer, producer)


def test_caps_at_content_length_when_the_file_has_more():
    body = TrackedFile(bytes(range(100)))
    request, producer, done = run(body, 40)
    assert b"".join(request.written) == bytes(range(40))
    assert max(len(chunk) for chunk in request.written) <= 16
    assert all(n <= 16 for n in body.reads)
    assert body.position_at_close == 40
    assert producer.sent == 40
    assert producer.remaining == 0
    assert done.calls == [(producer, False)]
    assert body.was_closed


def test_without_length_sends_everything():
    body = TrackedFile(b"y" * 50)
    request, producer, done = run(body, None)
    assert b"".join(request.written) == b"y" * 50
    assert producer.remaining is None
    assert done.calls == [(producer, False)]
    assert body.was_closed


def test_zero_length_reads_nothing():
    body = TrackedFile(b"data")
    request, producer, done = run(body, 0)
    assert request.written == []
    assert body.reads == []
    assert done.calls == [(producer, False)]


def test_body_shorter_than_length_finishes_with_remaining():
    body = TrackedFile(b"z" * 10)
    request, producer, done = run(body, 30)
    assert b"".join(request.written) == b"z" * 10
    assert producer.remaining == 20
    assert done.calls == [(producer, False)]


def test_iterator_only_body_is_recut_and_capped():
    body = IteratorBody([b"abc", b"", b"defghij", b"k" * 40, b"never"])
    request, producer, done = run(body, 30, chunk_size=8)
    data = b"".join(request.written)
    assert data == (b"abcdefghij" + b"k" * 40)[:30]
    assert all(len(chunk) <= 8 for chunk in request.written)
    assert done.calls == [(producer, False)]
    assert body.closed


def test_generator_body_without_length():
    def gen():
        yield b"one "
        yield b"two "
        yield b"three"
    request, producer, done = run(gen(), None, chunk_size=3)
    assert b"".join(request.written) == b"one two three"
    assert done.calls == [(producer, False)]


def test_read_error_reports_error_and_closes():
    class Broken(TrackedFile):
        def read(self, n=-1):
            if self.reads:
                raise OSError("blob vanished")
            return super().read(n)
    body = Broken(b"q" * 100)
    request, producer, done = run(body, 100)
    assert b"".join(request.written) == b"q" * 16
    assert done.calls == [(producer, True)]
    assert body.was_closed


def test_close_error_still_reports_done():
    class BadClose(TrackedFile):
        def close(self):
            raise OSError("cannot close")
    body = BadClose(b"abc")
    request, producer, done = run(body, None)
    assert done.calls == [(producer, False)]


def test_stop_producing_reports_error_once():
    request = DummyRequest([])
    calls = []
    body = TrackedFile(b"w" * 100)
    producer = BodyProducer(request, body, None, 16, lambda p, e: calls.append(e))
    producer.resumeProducing()
    producer.stopProducing()
    producer.stopProducing()
    producer.resumeProducing()
    assert calls == [True]
    assert body.was_closed
    assert b"".join(request.written) == b"w" * 16


def test_stream_body_is_iterable_and_closes():
    body = TrackedFile(b"0123456789")
    wrapper = StreamBody(body, block_size=4)
    assert list(wrapper) == [b"0123", b"4567", b"89"]
    wrapper.close()
    assert body.was_closed


def test_stream_body_default_block_size_and_no_close():
    class NoClose:
        def read(self, n):
            return b""
    wrapper = StreamBody(NoClose())
    assert wrapper.block_size == 256 * 1024
    assert list(wrapper) == []
    wrapper.close()


def test_stream_body_is_streamed_from_its_file():
    body = TrackedFile(b"s" * 20)
    request, producer, done = run(StreamBody(body, block_size=3), 20, chunk_size=8)
    assert b"".join(request.written) == b"s" * 20
    assert all(n <= 8 for n in body.reads)
    assert body.was_closed


@pytest.mark.parametrize("make", [lambda d: io.BytesIO(d), lambda d: StreamBody(io.BytesIO(d)),
                                  lambda d: iter([d[:2], d[2:]])])
def test_chunk_reader(make):
    read = chunk_reader(make(b"abcdef"), 4)
    assert read(4) == b"abcd"
    assert read(4) == b"ef"
    assert read(4) == b""


class StalledRequest:
    """A request whose consumer never pulls (its client stopped reading): the producer is
    registered and then left alone."""

    def __init__(self, clock):
        self.written = []
        self.aborted = []
        transport = type("Transport", (), {"abortConnection": lambda _: self.aborted.append(clock.seconds()),
                                           "getPeer": lambda _: None})()
        self.channel = type("Channel", (), {"transport": transport})()

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def write(self, data):
        self.written.append(data)


def test_stall_aborts_a_connection_whose_client_takes_nothing():
    """With ``stall`` (HTTP/1.1) a producer not resumed for that long aborts the connection
    (the client stopped reading); every resume starts the wait again."""
    clock = Clock()
    request = StalledRequest(clock)
    body = TrackedFile(b"x" * 64)
    producer = BodyProducer(request, body, 64, 16, lambda p, e: None, stall=(clock, 5))
    producer.start()
    clock.advance(4)
    producer.resumeProducing()  # the consumer took the previous buffer
    clock.advance(4)
    assert request.aborted == []
    clock.advance(1)
    assert request.aborted == [9]
    producer.stopProducing()  # the transport, once the abort closed it
    assert body.was_closed and clock.getDelayedCalls() == []
