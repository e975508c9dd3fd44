"""txzserver.server.http2: the idle timeout, the reset budget, and limits for hostile clients."""

import h2.errors
import h2.events
import h2.settings
import pytest
from hyperframe.frame import (
    ContinuationFrame, DataFrame, Frame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame,
)
from twisted.internet.interfaces import IPushProducer
from twisted.web import _http2, server
from twisted.web._http2 import H2Connection
from twisted.web.resource import Resource
from zope.interface import implementer

from txzserver.server.h2limits import FrameGuard, TokenBucket
from txzserver.server import http2
from txzserver.server.http2 import OUTBOUND_HIGH_WATER, SEND_BATCH, H2Channel
from txzserver.server.negotiate import H2_PREFACE as PREFACE

from .helpers import (
    Echo, H2Client, Hanging, ThreadsReactor, connect, make_settings, make_site, responses, spin,
)

# HTTP/2 idle timeout

def _h2_connection(resource, timeout=10):
    site = make_site(resource, h2c=True, idle_timeout=timeout)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    return site, protocol, transport, client


def test_h2_connection_without_streams_times_out():
    site, protocol, transport, client = _h2_connection(Echo())
    site.reactor.advance(9)
    assert not transport.disconnecting
    site.reactor.advance(2)
    assert transport.disconnecting
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in client.events())


def test_h2_connection_with_open_stream_is_not_timed_out():
    resource = Hanging()
    site, protocol, transport, client = _h2_connection(resource)
    client.request(1)
    client.flush()
    assert len(resource.pending) == 1
    for _ in range(5):
        site.reactor.advance(11)
        assert not transport.disconnecting
    assert protocol.channel.streams

    resource.finish_all()
    spin(site.reactor)
    answer = responses(client.events())[1]
    assert (answer["status"], answer["body"], answer["ended"]) == (200, b"done", True)
    assert not protocol.channel.streams
    site.reactor.advance(11)
    assert transport.disconnecting


def test_h2_idle_timer_restarts_after_the_last_stream():
    """After a long request the connection gets a full idle period, not an immediate close."""
    resource = Hanging()
    site, protocol, transport, client = _h2_connection(resource)
    client.request(1)
    client.flush()
    site.reactor.advance(25)
    resource.finish_all()
    spin(site.reactor)
    client.events()
    site.reactor.advance(5)
    assert not transport.disconnecting


def test_interfaces():
    from twisted.internet.interfaces import IProtocol, IPushProducer
    from zope.interface.verify import verifyObject
    h2 = H2Channel(make_settings(), reactor=ThreadsReactor())
    assert verifyObject(IProtocol, h2)
    assert verifyObject(IPushProducer, h2)


# Rapid Reset (CVE-2023-44487) and the reset budget

def _flood(client, pairs, first=1):
    import h2.errors
    for n in range(pairs):
        stream_id = first + 2 * n
        client.request(stream_id)
        client.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
    client.flush()


def test_a_few_cancelled_streams_are_fine():
    """Browsers cancel streams when a page is left: well within the default budget (100)."""
    site, protocol, transport, client = _h2_connection(Hanging(), timeout=60)
    _flood(client, 20)
    assert not transport.disconnecting


def test_reset_budget_closes_the_connection_past_the_burst():
    """Rapid Reset (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM once the budget is spent."""
    import h2.errors
    resource = Hanging()
    site = make_site(resource, h2c=True, http2_max_reset_burst=5, http2_reset_rate=1)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    _flood(client, 5)
    assert not transport.disconnecting
    site.reactor.advance(2)  # two tokens come back
    _flood(client, 2, first=11)
    assert not transport.disconnecting
    _flood(client, 1, first=15)
    assert transport.disconnecting
    terminated = [e for e in client.events() if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated and terminated[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_settings_advertised_to_the_client():
    site = make_site(Echo(), h2c=True, http2_max_concurrent_streams=7, max_header_size=8192)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    remote = client.conn.remote_settings
    assert remote.max_concurrent_streams == 7
    assert remote.max_header_list_size == 8192
    assert protocol.channel.conn.decoder.max_header_list_size == 8192


# Hostile clients (one connection must not exhaust the server): limits answered per RFC 9113

def _raw_connection(resource=None, **settings):
    """A connection whose client preface and SETTINGS are sent, and the server's read."""
    site = make_site(resource or Echo(), h2c=True, **settings)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    client.events()
    return site, protocol, transport, client


def _goaway(client):
    terminated = [e for e in client.events() if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated, "no GOAWAY"
    return terminated[0].error_code


def test_more_header_fields_than_max_headers_get_431_on_the_stream():
    site, protocol, transport, client = _raw_connection(max_headers=5)
    client.request(1, headers=[(f"x-field-{n}", "v") for n in range(6)])
    client.request(3, headers=[(f"x-field-{n}", "v") for n in range(5)])
    client.flush()
    answers = responses(client.events())
    assert answers[1]["status"] == 431 and b"(max-headers)" in answers[1]["body"]
    assert answers[3]["status"] == 200  # the connection goes on
    assert [r.path for r in site.resource.requests] == [b"/"]
    assert not transport.disconnecting


def test_cookie_crumbs_count_as_one_header_line():
    """RFC 9113 8.2.3 lets a client split Cookie into one field per cookie."""
    site, protocol, transport, client = _raw_connection(max_headers=5)
    client.request(1, headers=[("cookie", f"c{n}=v") for n in range(20)])
    client.flush()
    assert responses(client.events())[1]["status"] == 200


def test_header_block_over_max_header_size_is_a_connection_error():
    """h2 refuses a field block over MAX_HEADER_LIST_SIZE: GOAWAY ENHANCE_YOUR_CALM."""
    site, protocol, transport, client = _raw_connection(max_header_size=4096)
    client.request(1, headers=[(f"x-field-{n}", "v" * 100) for n in range(60)])
    client.flush()
    assert _goaway(client) == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert site.resource.requests == []


def test_hpack_bomb_is_refused_before_it_is_inflated(monkeypatch):
    """One 4 kB dynamic-table entry, then 16,000 one-byte references to it: 64 MB decoded.
    The decoder stops at MAX_HEADER_LIST_SIZE."""
    import hpack
    sizes = []
    original = hpack.Decoder.decode

    def decode(self, data, raw=False):
        sizes.append(len(data))
        return original(self, data, raw)
    monkeypatch.setattr(hpack.Decoder, "decode", decode)
    site, protocol, transport, client = _raw_connection()
    encoder = hpack.Encoder()
    block = encoder.encode([(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
                            (b":authority", b"x"), (b"x-bomb", b"b" * 4000)])
    block += b"\xbe" * 16000  # indexed field 62: the newest dynamic-table entry
    frames = [HeadersFrame(1, block[:16000], flags=["END_STREAM"])]
    frames += [ContinuationFrame(1, block[n:n + 16000]) for n in range(16000, len(block), 16000)]
    frames[-1].flags.add("END_HEADERS")
    protocol.dataReceived(b"".join(f.serialize() for f in frames))
    assert _goaway(client) == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert site.resource.requests == []
    assert sizes == [len(block)]


def test_continuation_flood_is_cut_off():
    """CVE-2024-27316 class: CONTINUATION frames without END_HEADERS, for ever."""
    site, protocol, transport, client = _raw_connection()
    protocol.dataReceived(HeadersFrame(1, b"\x82").serialize())
    frame = ContinuationFrame(1, b"\x00" * 16000).serialize()
    sent = 0
    while not transport.disconnecting and sent < 1000:
        protocol.dataReceived(frame)
        sent += 1
    assert transport.disconnecting and sent <= 65
    assert _goaway(client) == h2.errors.ErrorCodes.PROTOCOL_ERROR


def test_ping_flood_to_a_client_that_does_not_read_is_cut_off():
    """Twisted buffers control frames up to a limit while the transport is full."""
    site, protocol, transport, client = _raw_connection()
    protocol.channel.pauseProducing()  # the transport's buffer is full: the client is not reading
    ping = PingFrame(0, b"12345678").serialize()
    sent = 0
    while not transport.disconnecting and sent < 100_000:
        protocol.dataReceived(ping * 100)
        sent += 100
    assert transport.disconnecting and sent < 5000


def test_more_streams_than_advertised_are_refused_and_the_others_served():
    """RFC 9113 5.1.2: a stream error (REFUSED_STREAM), not h2's GOAWAY PROTOCOL_ERROR."""
    resource = Hanging()
    site = make_site(resource, h2c=True, http2_max_concurrent_streams=2)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()  # the client sends before it has read the server's SETTINGS
    for stream_id in (1, 3, 5, 7):
        client.request(stream_id)
    client.flush()
    answers = responses(client.events())
    assert {sid: a["reset"] for sid, a in answers.items()} == {
        5: h2.errors.ErrorCodes.REFUSED_STREAM, 7: h2.errors.ErrorCodes.REFUSED_STREAM}
    assert len(resource.pending) == 2
    resource.finish_all()
    spin(site.reactor)
    answers = responses(client.events())
    assert [answers[sid]["status"] for sid in (1, 3)] == [200, 200]
    client.request(9)  # room again
    client.flush()
    assert len(resource.pending) == 1 and not transport.disconnecting


def test_refused_streams_spend_the_reset_budget():
    site = make_site(Hanging(), h2c=True, http2_max_concurrent_streams=1, http2_max_reset_burst=3)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    for stream_id in range(1, 12, 2):  # one read each: the channel sees each stream
        client.request(stream_id)
        client.flush()
    assert transport.disconnecting
    assert _goaway(client) == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_streams_past_the_backstop_in_one_read_are_h2s_connection_error():
    """Within one read h2 itself admits the advertised limit plus the reset burst."""
    site = make_site(Hanging(), h2c=True, http2_max_concurrent_streams=1, http2_max_reset_burst=3)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()
    for stream_id in range(1, 12, 2):
        client.request(stream_id)
    client.flush()
    assert transport.disconnecting
    assert _goaway(client) == h2.errors.ErrorCodes.PROTOCOL_ERROR


@pytest.mark.parametrize("garbage, code", [
    (b"GARBAGE GARBAGE GARBAGE\r\n", h2.errors.ErrorCodes.PROTOCOL_ERROR),  # not SETTINGS
    (DataFrame(1, b"abcd").serialize(), h2.errors.ErrorCodes.PROTOCOL_ERROR),
])
def test_garbage_after_the_preface_is_a_protocol_error(garbage, code):
    site = make_site(Echo(), h2c=True)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    protocol.dataReceived(PREFACE + garbage)
    assert transport.disconnecting
    assert _goaway(client) == code


def test_a_frame_announced_larger_than_max_frame_size_is_refused_from_its_header():
    """h2 would wait for all 16 MB of it before checking; the header says enough."""
    site, protocol, transport, client = _raw_connection()
    protocol.dataReceived(b"\xff\xff\xff\x00\x00\x00\x00\x00\x01")  # DATA of 16 MB on stream 1
    assert transport.disconnecting
    assert _goaway(client) == h2.errors.ErrorCodes.FRAME_SIZE_ERROR


def _guard(burst=100, rate=10.0, now=None):
    clock = now or (lambda: 0.0)
    return FrameGuard(TokenBucket(burst, rate, clock()), clock)


def test_frame_guard_follows_frames_across_reads():
    guard = _guard()
    data = PREFACE + SettingsFrame(0).serialize() + PingFrame(0, b"12345678").serialize()
    data += DataFrame(1, b"x" * 16384).serialize()
    data += b"\x00\x40\x01\x00\x00\x00\x00\x00\x01"  # DATA of 16,385 bytes: one too many
    assert [guard.check(data[n:n + 1], 16384) for n in range(len(data) - 1)] == [None] * (len(data) - 1)
    assert guard.check(data[-1:], 16384)[0] == h2.errors.ErrorCodes.FRAME_SIZE_ERROR


def _frames_in(data):
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    return frames


def test_data_on_a_closed_stream_is_a_stream_closed_error():
    """RFC 9113 5.1: RST_STREAM STREAM_CLOSED; the connection goes on."""
    site, protocol, transport, client = _raw_connection()
    client.request(1)
    client.flush()
    assert responses(client.events())[1]["ended"]
    protocol.dataReceived(DataFrame(1, b"late", flags=["END_STREAM"]).serialize())
    resets = [f for f in _frames_in(transport.value()) if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, h2.errors.ErrorCodes.STREAM_CLOSED)]
    assert not transport.disconnecting


# Zero windows and clients that do not read

class Pump(Resource):
    """Answers ``size`` bytes from a push producer, one ``chunk`` per reactor turn."""

    isLeaf = True

    def __init__(self, reactor, size, chunk=65536):
        super().__init__()
        self.reactor, self.size, self.chunk = reactor, size, chunk
        self.produced = 0

    def render(self, request):
        pump = self

        @implementer(IPushProducer)
        class Producer:
            paused = False
            call = None

            def tick(self):
                self.call = None
                if self.paused or request.finished:
                    return
                if pump.produced >= pump.size:
                    request.unregisterProducer()
                    request.finish()
                    return
                pump.produced += pump.chunk
                request.write(b"x" * pump.chunk)  # may pause us
                if not self.paused:
                    self.call = pump.reactor.callLater(0, self.tick)

            def pauseProducing(self):
                self.paused = True

            def resumeProducing(self):
                self.paused = False
                if self.call is None:
                    self.call = pump.reactor.callLater(0, self.tick)

            def stopProducing(self):
                self.paused = True

        request.setHeader(b"content-length", b"%d" % self.size)
        producer = Producer()
        request.registerProducer(producer, True)
        producer.resumeProducing()
        return server.NOT_DONE_YET


def _downloading(window, size=4 * 1024 * 1024, idle_timeout=10, reading=True):
    reactor = ThreadsReactor()
    resource = Pump(reactor, size)
    site = make_site(resource, h2c=True, reactor=reactor, idle_timeout=idle_timeout)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, reactor)
    client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    if window > 65535:
        client.conn.increment_flow_control_window(window - 65535)
    client.flush()
    client.events()
    if not reading:
        protocol.channel.pauseProducing()  # the transport's buffer is full
    client.request(1, path="/big")
    client.flush()
    return reactor, resource, protocol, transport, client


def test_a_client_that_opens_a_huge_window_and_does_not_read_gets_little_queued():
    """Twisted pauses a producer at the end of the window only: with a 2 GB window and a full
    transport the whole file was queued. OUTBOUND_HIGH_WATER holds it back."""
    reactor, resource, protocol, transport, client = _downloading(2**31 - 1, reading=False)
    channel = protocol.channel
    for _ in range(200):
        reactor.advance(0.01)
    assert resource.produced <= OUTBOUND_HIGH_WATER + resource.chunk
    channel.resumeProducing()  # it reads again: the rest comes
    received = b""
    for _ in range(2000):
        reactor.advance(0.01)
        received += b"".join(e.data for e in client.events() if isinstance(e, h2.events.DataReceived))
        if len(received) == resource.size:
            break
    assert len(received) == resource.size


def test_a_stream_stalled_by_a_zero_window_is_timed_out():
    """The idle timeout waits for a stream being answered, not for a client that keeps its
    window shut (nothing is buffered meanwhile but one chunk)."""
    reactor, resource, protocol, transport, client = _downloading(0, idle_timeout=5)
    reactor.advance(1)
    answers = responses(client.events())
    assert answers[1]["status"] == 200 and answers[1]["body"] == b""
    assert resource.produced == resource.chunk
    reactor.advance(3)
    assert not transport.disconnecting
    reactor.advance(2)
    assert transport.disconnecting
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in client.events())


def test_a_stream_whose_client_opens_its_window_is_not_timed_out():
    reactor, resource, protocol, transport, client = _downloading(0, size=16 * 65536, idle_timeout=5)
    received = 0
    for _ in range(40):
        reactor.advance(1)
        for event in client.events():
            if isinstance(event, h2.events.DataReceived):
                received += len(event.data)
        client.conn.increment_flow_control_window(16384, stream_id=1)
        client.conn.increment_flow_control_window(16384)
        client.flush()
    assert not transport.disconnecting
    assert received == 39 * 16384  # the last increment's data is not read yet


def test_closing_unregisters_from_the_transport():
    """TLS closes only once no producer is registered: without this every HTTP/2 connection
    over TLS the server closed stayed open (for 15 s after an idle timeout, else until the
    client left)."""
    site, protocol, transport, client = _h2_connection(Echo())
    assert transport.producer is protocol.channel
    site.reactor.advance(11)  # idle timeout
    assert transport.disconnecting and transport.producer is None

    site, protocol, transport, client = _raw_connection()
    protocol.dataReceived(b"\xff\xff\xff\x00\x00\x00\x00\x00\x01")  # GOAWAY, then close
    assert transport.disconnecting and transport.producer is None


def test_control_frame_flood_gets_enhance_your_calm():
    """RFC 9113 10.5: SETTINGS/PING frames past the budget close the connection."""
    now = [0.0]
    guard = _guard(burst=5, rate=1.0, now=lambda: now[0])
    assert guard.check(PREFACE + SettingsFrame(0).serialize(), 16384) is None  # 1 of 5
    pings = b"".join(PingFrame(0, b"12345678").serialize() for _ in range(4))
    assert guard.check(pings, 16384) is None  # 5 of 5
    now[0] = 2.0  # two tokens come back
    assert guard.check(pings[:34], 16384) is None  # two more
    code, reason = guard.check(PingFrame(0, b"12345678").serialize(), 16384)
    assert code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert "http2-max-control-frames" in reason


def test_control_frame_budget_comes_from_the_settings():
    site = make_site(Echo(), h2c=True, http2_max_control_frames=3, http2_control_frame_rate=0.5)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.flush()  # the client's SETTINGS: 1 of 3
    client.events()
    for _ in range(2):
        client.conn.ping(b"12345678")
    client.flush()
    assert not transport.disconnecting
    client.conn.ping(b"12345678")
    client.flush()
    assert transport.disconnecting


@pytest.mark.parametrize("name", http2.PRIVATE_TWISTED_ATTRIBUTES)
def test_private_twisted_attribute_exists(name):
    """The sending loop reads and sets these; an upgrade that renames one fails here."""
    assert hasattr(H2Connection(reactor=ThreadsReactor()), name), (
        f"twisted.web._http2.H2Connection has no {name!r} any more: txzserver.server.http2 uses it")


@pytest.mark.parametrize("name", http2.REPLACED_TWISTED_METHODS)
def test_h2stream_still_sends_through_the_replaced_method(name):
    import inspect
    assert callable(getattr(H2Connection, name, None))
    assert f"self._conn.{name}(" in inspect.getsource(_http2.H2Stream), (
        f"H2Stream no longer calls H2Connection.{name}: txzserver.server.http2 replaces it")


@pytest.mark.parametrize("name", http2.PRIVATE_TWISTED_MODULE_NAMES)
def test_private_twisted_module_name_exists(name):
    assert hasattr(_http2, name), f"twisted.web._http2 has no {name!r} any more"


@pytest.mark.parametrize("max_frame", [16384, 65536])
def test_a_download_is_sent_as_many_frames_per_write(max_frame):
    """Twisted wrote one DATA frame per reactor turn (one send() per 16 KB): h2c ran at 15% of
    HTTP/1.1. A turn now frames up to SEND_BATCH bytes, no frame larger than the client
    allows, in one write; the file arrives whole."""
    reactor = ThreadsReactor()
    resource = Pump(reactor, 2 * 1024 * 1024, chunk=SEND_BATCH)
    protocol, transport = connect(make_site(resource, h2c=True, reactor=reactor))
    client = H2Client(protocol, transport, reactor)
    client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1,
                                 h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame})
    client.conn.increment_flow_control_window(2**31 - 1 - 65535)
    client.flush()
    client.events()
    writes = []
    write = transport.write
    transport.write = lambda data: (writes.append(len(data)), write(data))
    client.request(1, path="/big")
    client.flush()
    received, sizes = b"", []
    for _ in range(2000):
        reactor.advance(0.01)
        events = client.events()
        received += b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        sizes += [len(e.data) for e in events if isinstance(e, h2.events.DataReceived)]
        if any(isinstance(e, h2.events.StreamEnded) for e in events):
            break
    assert len(received) == resource.size and received == b"x" * resource.size
    assert max(sizes) == max_frame  # as large as the client allows, no larger
    # the largest write: a batch of frames and the response's HEADERS, sent with the first
    assert max(writes) > 4 * 16384
    assert max(writes) <= SEND_BATCH + SEND_BATCH // max_frame * 9 + 9 + 1024
    assert len(writes) <= resource.size // SEND_BATCH + 4  # SETTINGS, HEADERS, END_STREAM


def test_frames_built_here_keep_h2s_flow_control_exact():
    """DATA frames are framed by the sending loop and only accounted in h2: the client's
    h2 (which refuses DATA past its window) gets exactly what each WINDOW_UPDATE allows, and
    the server's view of both windows matches the client's after every step."""
    reactor, resource, protocol, transport, client = _downloading(65535, size=1024 * 1024)
    channel = protocol.channel
    received, granted = 0, 65535
    for _ in range(200):
        reactor.advance(0.01)
        events = client.events()
        data = [e for e in events if isinstance(e, h2.events.DataReceived)]
        for event in data:
            received += event.flow_controlled_length
            assert received <= granted  # h2 itself raises before this on an overrun
        if any(isinstance(e, h2.events.StreamEnded) for e in events):
            break
        window = channel.conn.local_flow_control_window(1)
        assert window == client.conn.remote_flow_control_window(1) == granted - received
        if data and received == granted:  # the window is used up: open it by 100,000 bytes
            client.conn.increment_flow_control_window(100_000, stream_id=1)
            client.conn.increment_flow_control_window(100_000)
            client.flush()
            granted += 100_000
    assert received == resource.size
    assert channel.conn.outbound_flow_control_window == client.conn.inbound_flow_control_window


# One write per response

def _writes_of(transport):
    writes = []
    write = transport.write
    transport.write = lambda data: (writes.append(data), write(data))
    return writes


def test_a_small_response_is_one_write_with_end_stream_on_its_data():
    """Twisted wrote HEADERS, then DATA, then an empty DATA frame with END_STREAM a turn
    later: three send() calls for a response HTTP/1.1 sends in one. Now one write carries
    HEADERS and one DATA frame flagged END_STREAM. (The response comes after the read, as
    a publisher thread's does.)"""
    resource = Hanging()
    site, protocol, transport, client = _raw_connection(resource)
    client.request(1, path="/page")
    client.flush()
    writes = _writes_of(transport)
    resource.finish_all()
    spin(site.reactor)
    assert len(writes) == 1
    frames = _frames_in(writes[0])
    assert [type(f) for f in frames] == [HeadersFrame, DataFrame]
    assert "END_STREAM" in frames[1].flags and frames[1].data == b"done"
    answer = responses(client.events())[1]
    assert answer["status"] == 200 and answer["body"] == b"done" and answer["ended"]


def test_responses_finished_in_one_turn_are_sent_whole_and_the_connection_goes_on():
    resource = Hanging()
    site, protocol, transport, client = _raw_connection(resource)
    for stream_id in (1, 3, 5):
        client.request(stream_id)
    client.flush()
    writes = _writes_of(transport)
    resource.finish_all()
    spin(site.reactor)
    assert len(writes) == 3  # one per response (the sending loop takes a stream per turn)
    answers = responses(client.events())
    assert {sid: (a["body"], a["ended"]) for sid, a in answers.items()} == {
        1: (b"done", True), 3: (b"done", True), 5: (b"done", True)}
    client.request(7)
    client.flush()
    resource.finish_all()
    spin(site.reactor)
    assert responses(client.events())[7]["body"] == b"done"
    assert not protocol.channel.streams


class HeadersFirst(Hanging):
    """Sends its response head at once and its body only when the test says so."""

    def render(self, request):
        request.setHeader(b"content-type", b"text/plain")
        request.write(b"")  # the head, no body yet
        self.pending.append(request)
        return server.NOT_DONE_YET


def test_headers_of_a_response_whose_body_comes_later_are_sent_now():
    resource = HeadersFirst()
    site, protocol, transport, client = _raw_connection(resource)
    client.request(1)
    client.flush()
    answer = responses(client.events())[1]
    assert answer["status"] == 200 and not answer["ended"]
    request = resource.pending.pop()
    request.write(b"later")
    request.finish()
    spin(site.reactor)
    answer = responses(client.events())[1]
    assert answer["body"] == b"later" and answer["ended"]


def test_a_response_without_body_ends_its_stream():
    """No DATA frame to carry END_STREAM: an empty one does (a 204 here)."""
    class NoContent(Resource):
        isLeaf = True

        def render(self, request):
            request.setResponseCode(204)
            return b""

    site, protocol, transport, client = _raw_connection(NoContent())
    client.request(1)
    client.flush()
    answer = responses(client.events())[1]
    assert answer["status"] == 204 and answer["body"] == b"" and answer["ended"]
    assert not protocol.channel.streams


def test_the_local_address_is_asked_of_the_socket_once():
    """getsockname gives the GIL away; Twisted asked it for every request's environ."""
    echo = Echo()
    site, protocol, transport, client = _raw_connection(echo)
    asked = []
    get_host = transport.getHost
    transport.getHost = lambda: (asked.append(1), get_host())[1]
    for stream_id in (1, 3, 5):
        client.request(stream_id)
        client.flush()
        client.events()
        assert echo.requests[-1].getHost() == get_host()
    assert len(echo.requests) == 3 and len(asked) == 1


# HEADERS framed here

class BigHeader(Resource):
    isLeaf = True

    def __init__(self, value):
        super().__init__()
        self.value = value

    def render(self, request):
        request.setHeader(b"x-big", self.value)
        return b"ok"


def test_a_header_block_larger_than_a_frame_goes_on_in_continuation_frames():
    import random
    value = "".join(random.Random(7).choices("abcdefghijklmnopqrstuvwxyz0123456789", k=30000)).encode()
    site, protocol, transport, client = _raw_connection(BigHeader(value))
    client.request(1)
    client.flush()
    data = transport.value()
    frames = _frames_in(data)
    kinds = [type(f) for f in frames if f.stream_id == 1]
    assert kinds[:2] == [HeadersFrame, ContinuationFrame] and max(
        len(f.data) for f in frames if isinstance(f, (HeadersFrame, ContinuationFrame))) <= 16384
    first = next(f for f in frames if isinstance(f, HeadersFrame))
    assert "END_HEADERS" not in first.flags
    answer = responses(client.events())[1]
    assert answer["headers"][b"x-big"] == value and answer["body"] == b"ok" and answer["ended"]


def test_headers_for_a_stream_the_client_reset_are_not_sent():
    """A response finished after the client reset its stream (the publisher's thread was
    still in Zope): nothing goes out for it, and the connection goes on."""
    resource = Hanging()
    site, protocol, transport, client = _raw_connection(resource)
    client.request(1)
    client.request(3)
    client.flush()
    client.conn.reset_stream(1)
    client.flush()
    client.events()
    transport.clear()
    protocol.channel.writeHeaders(b"HTTP/2", b"200", b"OK", [(b"x-late", b"1")], 1)
    spin(site.reactor)
    assert not [f for f in _frames_in(transport.value()) if f.stream_id == 1]
    resource.pending = [r for r in resource.pending if not r._disconnected]
    resource.finish_all()
    spin(site.reactor)
    answers = responses(client.events())
    assert 1 not in answers and answers[3]["body"] == b"done" and answers[3]["ended"]
    assert not transport.disconnecting


@pytest.mark.parametrize("name", http2.PRIVATE_H2_ATTRIBUTES)
def test_private_h2_attribute_exists(name):
    import h2.config
    import h2.connection
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    assert isinstance(getattr(conn, name, None), bytearray), (
        f"h2's H2Connection.{name} is gone: txzserver.server.http2 appends HEADERS frames to it")


def test_cr_lf_and_nul_in_a_response_value_become_spaces():
    """The lean request keeps the app's fields raw; the encoder cleans each value once."""
    class SplitAttempt(Resource):
        isLeaf = True

        def render(self, request):
            request.setHeader(b"x-note", b"a\r\nset-cookie: stolen=1\x00b")
            return b"ok"

    site, protocol, transport, client = _raw_connection(SplitAttempt())
    client.request(1)
    client.flush()
    answer = responses(client.events())[1]
    assert answer["headers"][b"x-note"] == b"a  set-cookie: stolen=1 b"
    assert b"set-cookie" not in answer["headers"] and answer["body"] == b"ok"
