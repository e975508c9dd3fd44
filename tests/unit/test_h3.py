"""The HTTP/3 channel without sockets: an aioquic client's datagrams fed in memory to an
``H3Endpoint``, timers on a MemoryReactorClock."""

import pytest
from aioquic.h3.connection import ErrorCode, FrameType, H3Connection, encode_frame
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.stream import QuicStreamSender
from twisted.internet.interfaces import IPushProducer
from twisted.web._http2 import H2Stream
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from txzserver.server import h3
from txzserver.server.accesslog import request_protocol
from txzserver.server.h3 import MAX_UNACKED, header_size
from txzserver.server.http2 import OUTBOUND_HIGH_WATER
from txzserver.server.h3listen import alt_svc
from tests.robustness import ROWS

from .h3pair import Pair
from .helpers import Hanging

def test_get_is_answered_on_its_stream_and_labelled_h3(tmp_path):
    pair = Pair(tmp_path)
    stream_id = pair.get(b"/front?x=1")
    pair.pump()
    headers, body = pair.response(stream_id)
    assert headers[b":status"] == b"200"
    assert body == b"GET /front "
    request = pair.resource.requests[0]
    assert request.clientproto == b"HTTP/3"
    assert request_protocol(request) == "h3"
    assert pair.site.counter.by_protocol() == {("h3",): 1}
    assert pair.site.counter.idle == 1  # no open stream: idle, evictable


def test_several_streams_at_once(tmp_path):
    pair = Pair(tmp_path)
    ids = [pair.get(b"/page/%d" % n) for n in range(5)]
    pair.pump()
    for n, stream_id in enumerate(ids):
        assert pair.response(stream_id) == ({b":status": b"200", **pair.response(stream_id)[0]},
                                            b"GET /page/%d " % n)


def test_rapid_reset_closes_with_excessive_load(tmp_path):
    figures = ROWS["h3_rapid_reset"].figures
    pair = Pair(tmp_path, http2_max_reset_burst=figures["burst"], http2_reset_rate=0.001)
    for _ in range(figures["streams"]):
        stream_id = pair.get()
        pair.client.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        pair.client.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
    pair.pump()
    pair.reactor.advance(1)  # the server's CONNECTION_CLOSE leaves on its timer or at once
    pair.pump()
    closed = pair.terminated()
    assert closed and closed[0].error_code == ErrorCode.H3_EXCESSIVE_LOAD
    assert "resets" in closed[0].reason_phrase


def test_a_few_resets_are_a_browser_leaving_a_page(tmp_path):
    pair = Pair(tmp_path, http2_max_reset_burst=5)
    for _ in range(3):
        pair.client.reset_stream(pair.get(), ErrorCode.H3_REQUEST_CANCELLED)
    pair.pump()
    stream_id = pair.get()
    pair.pump()
    assert not pair.terminated()
    assert pair.response(stream_id)[0][b":status"] == b"200"


def test_header_over_max_header_size_gets_431(tmp_path):
    pair = Pair(tmp_path, max_header_size=4096)
    stream_id = pair.get(extra=[(b"x-big", b"a" * 5000)])
    pair.pump()
    headers, body = pair.response(stream_id)
    assert headers[b":status"] == b"431"
    assert b"max-header-size" in body
    assert not pair.resource.requests
    # the connection lives on
    stream_id = pair.get()
    pair.pump()
    assert pair.response(stream_id)[0][b":status"] == b"200"


def test_too_many_header_fields_get_431(tmp_path):
    pair = Pair(tmp_path, max_headers=10)
    stream_id = pair.get(extra=[(b"x-h%d" % n, b"v") for n in range(11)])
    pair.pump()
    headers, body = pair.response(stream_id)
    assert headers[b":status"] == b"431" and b"max-headers" in body


def test_max_field_section_size_is_advertised(tmp_path):
    pair = Pair(tmp_path, max_header_size=8192)
    assert pair.h3.received_settings[0x6] == 8192


def test_data_before_headers_is_frame_unexpected(tmp_path):
    pair = Pair(tmp_path)
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(stream_id, encode_frame(FrameType.DATA, b"x"), end_stream=True)
    pair.pump()
    closed = pair.terminated()
    assert closed and closed[0].error_code == ErrorCode.H3_FRAME_UNEXPECTED


def test_unknown_frame_type_is_ignored(tmp_path):
    pair = Pair(tmp_path)
    stream_id = pair.get()
    # a reserved frame type (RFC 9114 7.2.8) on the control stream: skipped by the server
    pair.client.send_stream_data(pair.h3._local_control_stream_id,
                                 encode_frame(0x21, b"grease"))
    pair.pump()
    assert not pair.terminated()
    assert pair.response(stream_id)[0][b":status"] == b"200"


def test_idle_connection_is_closed_and_its_slot_freed(tmp_path):
    pair = Pair(tmp_path, idle_timeout=30.0)
    pair.pump()
    assert pair.site.counter.open == 1
    pair.reactor.advance(31)
    pair.reactor.advance(31)
    assert pair.site.counter.open == 0
    assert not pair.endpoint.channels


def test_a_long_publish_is_not_cut_by_the_idle_timeout(tmp_path):
    pair = Pair(tmp_path, idle_timeout=30.0)
    pair.resource = pair.site.resource = Hanging()
    stream_id = pair.get()
    pair.pump()
    for _ in range(12):  # two minutes of publishing, the client answering the PINGs
        pair.reactor.advance(10)
        pair.pump()
    assert not pair.terminated() and pair.site.counter.open == 1
    pair.resource.finish_all()
    pair.pump()
    assert pair.response(stream_id) == ({**pair.response(stream_id)[0], b":status": b"200"},
                                        b"done")
    # then idle: closed after idle-timeout
    pair.reactor.advance(31)
    pair.reactor.advance(31)
    assert pair.site.counter.open == 0


def test_datagram_that_is_not_quic_is_ignored(tmp_path):
    pair = Pair(tmp_path)
    pair.endpoint.datagramReceived(b"\x00garbage", ("127.0.0.1", 40001))
    pair.endpoint.datagramReceived(b"\xc0" + b"\x00" * 1300, ("127.0.0.1", 40002))
    assert pair.site.counter.open == 1


def test_unknown_version_gets_version_negotiation(tmp_path):
    pair = Pair(tmp_path)
    # long header, version 0x1a2a3a4a (reserved for negotiation tests), cids of 8 bytes
    datagram = (b"\xc0" + bytes.fromhex("1a2a3a4a") + b"\x08" + b"d" * 8 + b"\x08" + b"s" * 8
                + b"\x00" * 1200)
    pair.endpoint.datagramReceived(datagram, ("127.0.0.1", 40003))
    (sent, addr), = pair.endpoint.transport.sent
    assert addr == ("127.0.0.1", 40003) and sent[1:5] == b"\x00\x00\x00\x00"


def test_alt_svc_value():
    assert alt_svc(8443) == 'h3=":8443"; ma=86400'


def test_header_size_counts_32_bytes_per_field():
    assert header_size([(b"ab", b"cde")]) == 37


@pytest.mark.parametrize("name", h3.PRIVATE_AIOQUIC_NAMES)
def test_aioquic_private_names_exist(tmp_path, name):
    config = QuicConfiguration(is_client=True)
    assert hasattr(QuicConnection(configuration=config), name)


def test_twisted_stream_class_exists():
    assert callable(H2Stream.writeHeaders) and callable(H2Stream.windowUpdated)


@pytest.mark.parametrize("name", h3.PRIVATE_AIOQUIC_SENDER_NAMES)
def test_aioquic_sender_private_names_exist(name):
    assert hasattr(QuicStreamSender(0, True), name)


@pytest.mark.parametrize("name", h3.PRIVATE_AIOQUIC_H3_NAMES)
def test_aioquic_h3_private_names_exist(name):
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True))
    assert hasattr(H3Connection(quic), name)


def test_more_requests_than_the_stream_limit_are_all_answered(tmp_path):
    """The client may open http2-max-concurrent-streams streams at once; as they finish, the
    server raises the limit (MAX_STREAMS) and the waiting requests go out."""
    pair = Pair(tmp_path, http2_max_concurrent_streams=4)
    ids = [pair.get(b"/p/%d" % n) for n in range(12)]
    pair.pump(200)
    assert pair.client._remote_max_streams_bidi > 4
    assert [pair.response(i) for i in ids] == [
        ({**pair.response(i)[0], b":status": b"200"}, b"GET /p/%d " % n) for n, i in enumerate(ids)]


# Backpressure: bytes not yet sent, bytes not yet acknowledged


@implementer(IPushProducer)
class Download(Resource):
    """Leaf resource answering ``size`` bytes in ``chunk``-byte writes from a push producer,
    as the reactor's streaming path does: paused and resumed by the stream's flow control."""

    isLeaf = True

    def __init__(self, size, chunk=64 * 1024):
        super().__init__()
        self.size, self.chunk = size, chunk
        self.request = None
        self.paused = False
        self.pauses = 0

    def render(self, request):
        self.request, self.left = request, self.size
        request.setHeader(b"content-length", b"%d" % self.size)
        request.registerProducer(self, True)
        self.resumeProducing()
        return NOT_DONE_YET

    def pauseProducing(self):
        self.paused = True
        self.pauses += 1

    def resumeProducing(self):
        self.paused = False
        while not self.paused and self.left:
            data = bytes([self.left % 251]) * min(self.chunk, self.left)
            self.left -= len(data)
            self.request.write(data)
        if not self.left and self.request is not None:
            request, self.request = self.request, None
            request.unregisterProducer()
            request.finish()

    def stopProducing(self):
        self.request = None


def body_of(size):
    """What Download sends: each chunk the byte of what was left before it, mod 251."""
    out, left = bytearray(), size
    while left:
        n = min(64 * 1024, left)
        out += bytes([left % 251]) * n
        left -= n
    return bytes(out)


def in_flight(channel, stream_id):
    return channel._buffered(stream_id) - channel._unsent(stream_id)


def download(pair, rounds=100):
    """Fetch a Download's body over a path of 10 ms round trips: the server's timers run
    every 0.25 ms (aioquic paces its packets), the client reads and acknowledges once a
    round. (body, the most bytes the server had sent and not had acknowledged, the most
    the connection held unacknowledged)."""
    stream_id = pair.get(b"/blob")
    pair.pump(rounds=1)
    channel = next(iter(pair.endpoint.channels.values()))
    flight = held = 0
    for _ in range(rounds):
        for _ in range(40):
            pair.reactor.advance(0.00025)
        flight = max(flight, in_flight(channel, stream_id))
        held = max(held, channel._unacknowledged())
        pair.pump(rounds=1)
        if pair.ended(stream_id):
            break
    return pair.response(stream_id)[1], flight, held


def test_a_download_is_not_held_to_the_high_water_in_flight(tmp_path):
    """What the client has not yet acknowledged is congestion control's to bound: the
    producer pauses at OUTBOUND_HIGH_WATER bytes not yet sent, so once the congestion
    window has grown more than that is in flight (at 256 KiB a round trip a download on
    loopback went 9-13 MiB/s)."""
    size = 4 * 1024 * 1024
    pair = Pair(tmp_path, resource=Download(size), client_window=8 * 1024 * 1024)
    body, flight, held = download(pair)
    assert len(body) == size and body == body_of(size)
    assert flight > 2 * OUTBOUND_HIGH_WATER, flight
    assert held <= MAX_UNACKED + 64 * 1024, held
    assert pair.resource.pauses  # the high water still paused it


def test_the_connection_holds_at_most_max_unacked(tmp_path, monkeypatch):
    """A client that takes everything but acknowledges slowly: no more than MAX_UNACKED (and
    one chunk) waits for acknowledgements, however large the windows."""
    monkeypatch.setattr(h3, "MAX_UNACKED", 128 * 1024)
    size = 2 * 1024 * 1024
    pair = Pair(tmp_path, resource=Download(size), client_window=8 * 1024 * 1024)
    body, flight, held = download(pair)
    assert body == body_of(size)
    assert held <= 128 * 1024 + 64 * 1024, held


def test_a_client_that_does_not_read_holds_its_window_and_the_high_water(tmp_path):
    """Its window shut (64 KiB, never raised): the server sends the window, keeps at most
    OUTBOUND_HIGH_WATER (and one chunk) unsent, and the producer stays paused."""
    pair = Pair(tmp_path, resource=Download(8 * 1024 * 1024), client_window=65536)
    pair.stop_reading()
    stream_id = pair.get(b"/blob")
    pair.pump(200)
    channel = next(iter(pair.endpoint.channels.values()))
    assert pair.resource.paused
    assert channel._unsent(stream_id) <= OUTBOUND_HIGH_WATER + 64 * 1024
    assert channel._buffered(stream_id) <= 65536 + OUTBOUND_HIGH_WATER + 64 * 1024
    assert len(pair.response(stream_id)[1]) <= 65536


# aioquic's timer


def test_the_timer_is_moved_only_when_it_comes_sooner(tmp_path):
    pair = Pair(tmp_path)
    pair.get()
    pair.pump()
    channel = next(iter(pair.endpoint.channels.values()))
    timer = channel._timer
    assert timer is not None and timer.active()
    due = timer.getTime()
    channel._arm_timer(due + 5)  # later: the call stays, it fires early and is re-armed
    assert channel._timer is timer and timer.getTime() == due
    channel._arm_timer(due - 0.001)  # sooner: moved
    assert channel._timer is timer and timer.getTime() == pytest.approx(due - 0.001)
    channel._arm_timer(None)
    assert channel._timer is None and not timer.active()
    channel._arm_timer(due)
    assert channel._timer.active() and channel._timer.getTime() == pytest.approx(due)


def test_a_timer_that_fires_early_does_nothing_and_is_armed_again(tmp_path):
    """aioquic's handle_timer acts only on what is due: the idle timeout still closes the
    connection at its own time, not at an early firing."""
    pair = Pair(tmp_path, idle_timeout=30)
    pair.pump()
    channel = next(iter(pair.endpoint.channels.values()))
    at = channel.quic.get_timer()
    channel._timer.reset(0)  # as when a sooner deadline (a pacing one) went away
    pair.reactor.advance(0)
    assert not channel._gone and channel._timer is not None
    assert channel._timer.getTime() == pytest.approx(at)
    pair.reactor.advance(31)
    assert channel._gone


class SplitAttempt(Resource):
    """Answers with a header value carrying CR, LF and NUL, as an app might pass one on."""

    isLeaf = True

    def render(self, request):
        request.setHeader(b"x-note", b"a\r\nset-cookie: stolen=1\x00b")
        return b"ok"


def test_cr_lf_and_nul_in_a_response_value_become_spaces(tmp_path):
    pair = Pair(tmp_path, resource=SplitAttempt())
    stream_id = pair.get(b"/")
    pair.pump()
    headers, body = pair.response(stream_id)
    assert headers[b"x-note"] == b"a  set-cookie: stolen=1 b" and b"set-cookie" not in headers
    assert body == b"ok"


def test_data_frames_are_what_aioquic_would_send():
    """The DATA frame written without copying the body is byte for byte aioquic's, and DATA
    before HEADERS is refused as aioquic refuses it."""
    from aioquic.h3.connection import FrameUnexpected

    def stream_bytes(connection_class, chunks):
        quic = QuicConnection(configuration=QuicConfiguration(is_client=True))
        connection = (connection_class(quic, 16384) if connection_class is h3.LimitedH3Connection
                      else connection_class(quic))
        connection.send_headers(0, [(b":status", b"200")])
        for chunk in chunks:
            connection.send_data(0, chunk, end_stream=False)
        connection.send_data(0, b"", end_stream=True)
        sender = quic._streams[0].sender
        return bytes(sender._buffer), sender._buffer_fin

    chunks = [b"x" * 65536, b"y", b"z" * 70000]
    assert stream_bytes(h3.LimitedH3Connection, chunks) == stream_bytes(H3Connection, chunks)
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True))
    with pytest.raises(FrameUnexpected):
        h3.LimitedH3Connection(quic, 16384).send_data(0, b"body", end_stream=False)
