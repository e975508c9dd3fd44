"""Hostile HTTP/2 clients (the h2 library, over h2c and TLS) and hostile bytes on the TLS port.

Each test asserts the answer RFC 9113 asks for (GOAWAY or RST_STREAM with the right error
code, or 431 on the stream; frames read with h2's own parser, hyperframe), that the attack
did not reach Zope's publisher threads (counted from Zope's IPubStart events,
``tests.support.published``), that the server's RSS, sampled every 0.1 s during the attack,
grew by less than a bound that the attack's amplification would break, and that the front
page, asked for by a probe in a process of its own on other connections, was served during
and right after the attack as it was before it (``tests.support.latency``). Figures go to
tests/results/http2_hostile.json.

Fixed in ``server/http2.py`` (unit tests in tests/unit/test_http2.py): more than max-headers
fields (431 on the stream), streams past SETTINGS_MAX_CONCURRENT_STREAMS (REFUSED_STREAM, not
h2's connection error), frames announced larger than SETTINGS_MAX_FRAME_SIZE (h2 buffered up to
16 MB per connection before checking), a response finished behind a zero window (Twisted's
sending loop spun at 100% CPU), a client opening a 2 GB window and not reading (Twisted queued
the whole file), streams stalled on the client's window (never timed out).
"""

import contextlib
import os
import signal
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame,
    SettingsFrame,
)

from tests.integration.test_rapid_reset import _counting_server
from tests.robustness import ROWS
from tests.support.clients import readable
from tests.support.latency import PageProbe
from tests.support.published import published
from tests.support.results import record
from tests.support.server import rss_bytes, wait_for
from tests.support.slow import timed_get
from txzserver.config.settings import ServerSettings

MB = 1024 * 1024
#: RSS growth allowed to attacks whose row claims none: as the rows' (16 MB), far below what
#: the attacks would cost if the server buffered them (a 100 MB file, 4 MB per connection)
RSS_MB = 16
TLS = ROWS["tls_garbage"].figures
IDLE_TIMEOUT = 3
HEADER_TIMEOUT = TLS["header_timeout"]
STREAMS = ROWS["h2_max_streams"].figures["streams"]  # http2-max-concurrent-streams (tight server)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ERRORS = h2.errors.ErrorCodes


def test_the_rows_state_the_defaults():
    """The rows' max-headers and control-frame budget are the defaults ``server`` runs with."""
    defaults = ServerSettings.__dataclass_fields__
    assert defaults["max_headers"].default == ROWS["h2_max_headers"].figures["max_headers"]
    assert defaults["http2_max_control_frames"].default == ROWS["control_frame_floods"].figures["burst"]
    assert defaults["http2_control_frame_rate"].default == ROWS["control_frame_floods"].figures["rate"]


@pytest.fixture(scope="module")
def server(servers):
    """Default limits (max-header-size 64KB, max-headers 200), one thread, h2c and TLS."""
    return _counting_server(servers, "h2-hostile")


@pytest.fixture(scope="module")
def tight_server(servers):
    """Short timeouts and few streams, for stalls and the stream limit."""
    return _counting_server(servers, "h2-hostile-tight",
                            f"idle-timeout {IDLE_TIMEOUT}s\nheader-timeout {HEADER_TIMEOUT}s\n"
                            f"http2-max-concurrent-streams {STREAMS}\n")


def _probe(server, site_id):
    # Show that the IPubStart count sees a request with a marker published.
    marker = f"warmup-{server.pid}"
    assert timed_get(server.url(f"/{site_id}?attack={marker}"), timeout=30)[1] == 200
    assert wait_for(lambda: published(server.event_log.read_text(errors="replace"), marker) == 1,
                    10, what="the IPubStart count")
    with PageProbe(server.url(f"/{site_id}")) as probe:
        probe.baseline(20)
        yield probe


@pytest.fixture(scope="module")
def probe(server, site_id):
    """Pages of ``server`` for the whole module, the baseline taken before any attack."""
    yield from _probe(server, site_id)


@pytest.fixture(scope="module")
def tight_probe(tight_server, site_id):
    yield from _probe(tight_server, site_id)


@contextlib.contextmanager
def paused(probe):
    """The probe stopped (SIGSTOP): its pages would show in the server's CPU time."""
    probe.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        probe.process.send_signal(signal.SIGCONT)


def _sock(server, tls_files, kind, alpn=("h2",)):
    if kind == "h2c":
        return socket.create_connection(("127.0.0.1", server.port), timeout=10)
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    context.set_alpn_protocols(list(alpn))
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.ports["https"]),
                                                        timeout=10), server_hostname="localhost")
    assert sock.selected_alpn_protocol() == alpn[0]
    return sock


class Raw:
    """A raw HTTP/2 client: an h2 connection for well-formed frames, ``send`` for any bytes,
    and the server's frames as received (``frames``), even after h2 gave up on them.

    A send that fails (``broken``: the server closed, its kernel reset the connection) does
    not end the reading: what the server sent before, its GOAWAY, is still in our receive
    queue, and ``wait`` reads it until the end of the stream (``closed``)."""

    def __init__(self, sock, settings=None, preface=True):
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.received = bytearray()
        self._parsed = 0  # bytes of ``received`` parsed into ``_frames``
        self._frames = []
        self.events = []
        self.broken = False
        self.closed = False
        self.closed_at = None
        if preface:
            self.flush()

    def flush(self):
        return self.send(self.conn.data_to_send())

    def send(self, data):
        if self.broken:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError):
            self.broken = True
            return False

    def _close(self):
        if not self.closed:
            self.closed, self.closed_at = True, time.monotonic()

    def read(self, wait):
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending and not readable(self.sock, wait):
            return
        try:
            data = self.sock.recv(65536)
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            self._close()
            return
        self.received.extend(data)
        if self.conn is not None:
            try:
                self.events += self.conn.receive_data(data)
                self.send(self.conn.data_to_send())
            except h2.exceptions.ProtocolError:
                self.conn = None  # the frames are still in self.received

    def wait(self, condition, timeout=10):
        """Read until ``condition()`` is true or the connection closed; its last value."""
        deadline = time.monotonic() + timeout
        while not condition() and not self.closed and time.monotonic() < deadline:
            self.read(0.05)
        return condition()

    def frames(self):
        """The server's frames so far (a torn last one waits for its rest)."""
        data = self.received
        while len(data) - self._parsed >= 9:
            at = self._parsed
            frame, length = Frame.parse_frame_header(memoryview(data[at:at + 9]))
            if len(data) - at - 9 < length:
                break
            frame.parse_body(memoryview(data[at + 9:at + 9 + length]))
            self._frames.append(frame)
            self._parsed = at + 9 + length
        return self._frames

    def goaway(self):
        """The error code of the server's GOAWAY, or None."""
        return next((ERRORS(f.error_code) for f in self.frames() if isinstance(f, GoAwayFrame)), None)

    def resets(self):
        return {f.stream_id: ERRORS(f.error_code) for f in self.frames() if isinstance(f, RstStreamFrame)}

    def request(self, path, headers=(), end_stream=True, flush=True):
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [(":method", "GET"), (":scheme", "http"),
                                           (":authority", "localhost"), (":path", path), *headers],
                               end_stream=end_stream)
        if flush:
            self.flush()
        return stream_id

    def response(self, stream_id):
        """(status or None, stream ended) from the events so far."""
        status, ended = None, False
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended = True
        self.flush()
        return status, ended

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Watch:
    """While an attack runs: the server's RSS sampled, and the probe's pages judged.

    On leaving, the pages that started during the attack and the one right after it are judged
    against the probe's baseline (all 200, p95 within RATIO x the p95 before, floor FLOOR s,
    none over CEILING s), and the RSS peak may exceed the RSS before by less than ``rss_mb``.
    """

    def __init__(self, server, probe, site_id, marker, rss_mb=RSS_MB):
        self.server, self.probe, self.marker, self.rss_mb = server, probe, marker, rss_mb
        self.rss_before = server.rss()
        self.rss_peak = self.rss_before
        self.error = None
        self._halt = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        try:
            while not self._halt.wait(0.1):
                self.rss_peak = max(self.rss_peak, rss_bytes(self.server.pid))
        except Exception as exc:  # reported by __exit__, in the test
            self.error = exc

    def __enter__(self):
        self._sampler.start()
        self.start = self.probe.mark()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self._sampler.join(5)
        if exc[0] is not None:
            return False
        assert self.error is None, f"the RSS sampler failed: {self.error!r}"
        self.probe.wait_samples(1, after=self.probe.mark())
        pages = self.probe.verdict("during and right after the attack", self.start)
        growth = self.rss_peak - self.rss_before
        record("http2_hostile", self.marker, rss_growth_mb=round(growth / MB, 2), **pages.figures())
        pages.check()
        # The bound is far below what buffering or decoding the attack would cost.
        assert growth < self.rss_mb * MB, f"the server grew by {growth / MB:.1f} MB"
        return False

    def published(self):
        """Requests with the attack's marker that Zope published (the probe fixture showed that
        the count works on this server)."""
        return published(self.server.event_log.read_text(errors="replace"), f"attack={self.marker}")


def _path(site_id, marker, n=0):
    return f"/{site_id}?attack={marker}-{n}"


KINDS = ["h2c", "tls"]


# Header limits: max-header-size (h2's MAX_HEADER_LIST_SIZE), max-headers (ours)

HEADER_BLOCK = ROWS["h2_header_block"].figures


@pytest.mark.parametrize("kind", KINDS)
def test_header_block_over_max_header_size(server, probe, site_id, tls_files, kind):
    """100 kB of headers (in HEADERS + CONTINUATION) over 64 KB: h2's connection error
    ENHANCE_YOUR_CALM (RFC 9113 10.5.1 allows it in place of 431)."""
    marker = f"header-size-{kind}"
    with Watch(server, probe, site_id, marker, HEADER_BLOCK["rss_mb"]) as watch:
        client = Raw(_sock(server, tls_files, kind))
        client.request(_path(site_id, marker), [(f"x-big-{n}", "v" * 1000) for n in range(100)])
        assert client.wait(client.goaway) == ERRORS.ENHANCE_YOUR_CALM
        client.close()
    assert watch.published() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_more_header_fields_than_max_headers_get_431_on_the_stream(server, probe, site_id,
                                                                   tls_files, kind):
    marker = f"header-count-{kind}"
    most = ROWS["h2_max_headers"].figures["max_headers"]
    with Watch(server, probe, site_id, marker) as watch:
        client = Raw(_sock(server, tls_files, kind))
        refused = client.request(_path(site_id, marker, 1), [(f"x-f-{n}", "v") for n in range(most + 1)])
        served = client.request(_path(site_id, marker, 2), [(f"x-f-{n}", "v") for n in range(most)])
        assert client.wait(lambda: client.response(refused)[1] and client.response(served)[1])
        assert client.response(refused)[0] == 431
        assert client.response(served)[0] == 200  # the connection goes on
        assert client.goaway() is None
        client.close()
    assert watch.published() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_hpack_bomb_is_refused_without_inflating_it(server, probe, site_id, tls_files, kind):
    """One 4,000-byte dynamic-table entry, then 1 MB of one-byte references to it (HEADERS and
    63 CONTINUATION frames): 4 GB decoded. The decoder stops at MAX_HEADER_LIST_SIZE. Five
    such connections buffer 5 MB of blocks; decoded they would be 20 GB."""
    marker = f"hpack-bomb-{kind}"
    encoder = hpack.Encoder()
    block = encoder.encode([(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                            (":path", _path(site_id, marker)), ("x-bomb", "b" * 4000)])
    block += b"\xbe" * (1 * MB - len(block))  # indexed field 62: the newest entry
    size = 16384
    frames = [HeadersFrame(1, block[:size], flags=["END_STREAM"])]
    frames += [ContinuationFrame(1, block[n:n + size]) for n in range(size, len(block), size)]
    frames[-1].flags.add("END_HEADERS")
    assert len(frames) <= ROWS["continuation_flood"].figures["frames"]  # a block h2 takes
    with Watch(server, probe, site_id, marker, HEADER_BLOCK["rss_mb"]) as watch:
        for _ in range(HEADER_BLOCK["bombs"]):
            client = Raw(_sock(server, tls_files, kind))
            client.send(b"".join(f.serialize() for f in frames))
            assert client.wait(client.goaway) == ERRORS.ENHANCE_YOUR_CALM
            client.close()
    assert watch.published() == 0


# Floods

def _padded_header_block(client, path, frames):
    """A request whose header block is HEADERS and ``frames`` - 1 empty CONTINUATION frames."""
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                    (":authority", "localhost"), (":path", path)])
    parts = [HeadersFrame(1, block, flags=["END_STREAM"])]
    parts += [ContinuationFrame(1, b"") for _ in range(frames - 1)]
    parts[-1].flags.add("END_HEADERS")
    client.send(b"".join(f.serialize() for f in parts))
    return 1


@pytest.mark.parametrize("kind", KINDS)
def test_header_block_of_more_frames_than_the_limit_is_a_protocol_error(server, probe, site_id,
                                                                        tls_files, kind):
    """The limit, exactly: a block of ``frames`` frames is a request, one more frame is not."""
    limit = ROWS["continuation_flood"].figures["frames"]
    marker = f"continuation-limit-{kind}"
    with Watch(server, probe, site_id, marker) as watch:
        client = Raw(_sock(server, tls_files, kind))
        client.conn = None  # the frames are read raw: h2 did not send this stream
        stream = _padded_header_block(client, _path(site_id, marker, 1), limit)
        answer = lambda: [f for f in client.frames()  # noqa: E731
                          if isinstance(f, HeadersFrame) and f.stream_id == stream]
        assert client.wait(answer)
        assert hpack.Decoder().decode(answer()[0].data)[0] == (":status", "200")
        client.close()
        client = Raw(_sock(server, tls_files, kind))
        client.conn = None
        _padded_header_block(client, _path(site_id, marker, 2), limit + 1)
        assert client.wait(client.goaway) == ERRORS.PROTOCOL_ERROR
        client.close()
    assert watch.published() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_continuation_flood_is_cut_off(server, probe, site_id, tls_files, kind):
    """CVE-2024-27316 class: HEADERS without END_HEADERS, then CONTINUATION for ever."""
    marker = f"continuation-{kind}"
    frame = ContinuationFrame(1, b"\x00" * 16000).serialize()
    with Watch(server, probe, site_id, marker) as watch:
        for _ in range(5):
            client = Raw(_sock(server, tls_files, kind))
            client.send(HeadersFrame(1, hpack.Encoder().encode(
                [(":method", "GET"), (":path", _path(site_id, marker))])).serialize())
            sent = 0
            while sent < 10_000 and client.send(frame * 10):  # up to 160 MB
                sent += 10
                client.read(0)
                if client.goaway() is not None:
                    break
            assert client.wait(client.goaway) == ERRORS.PROTOCOL_ERROR
            # What the kernels buffered (a few MB) was sent, not 160 MB.
            assert sent < 2000, f"{sent} CONTINUATION frames taken"
            client.close()
    assert watch.published() == 0


CONTROL = ROWS["control_frame_floods"].figures


@pytest.mark.parametrize("reads", [True, False], ids=["reading", "not-reading"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("frame", ["ping", "settings"])
def test_control_frame_flood_ends_in_enhance_your_calm(server, probe, site_id, tls_files, kind,
                                                       frame, reads):
    """100,000 PING or SETTINGS frames from a client reading the answers, or 2,000,000 from
    one that does not (its small receive buffer fills): the server answers at most its
    budget (http2-max-control-frames, refilled at http2-control-frame-rate), then GOAWAY
    ENHANCE_YOUR_CALM (RFC 9113 10.5); the one that does not read is then aborted."""
    marker = f"{frame}-flood-{kind}-{'reading' if reads else 'not-reading'}"
    sample = {"ping": PingFrame(0, b"12345678"),
              "settings": SettingsFrame(0, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})}
    with Watch(server, probe, site_id, marker) as watch:
        client = Raw(_sock(server, tls_files, kind))
        client.conn = None  # the answers are counted from the frames
        if not reads:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        begin = time.monotonic()
        batch = sample[frame].serialize() * 1000
        for _ in range((100_000 if reads else 2_000_000) // 1000):
            if not client.send(batch):
                break
            if reads:
                client.read(0)
                if client.goaway() is not None:
                    break
        assert client.broken or reads, "2,000,000 frames taken from a client that does not read"
        assert client.wait(client.goaway, timeout=30) == ERRORS.ENHANCE_YOUR_CALM
        seconds = time.monotonic() - begin
        answers = [f for f in client.frames() if isinstance(f, type(sample[frame])) and "ACK" in f.flags]
        # Our connection preface's SETTINGS is answered too: it counts against the budget.
        assert len(answers) <= CONTROL["burst"] + CONTROL["rate"] * seconds, (len(answers), seconds)
        record("http2_hostile", f"{marker}-answers", answers=len(answers), seconds=round(seconds, 3))
        client.close()
    assert watch.published() == 0


# Streams past SETTINGS_MAX_CONCURRENT_STREAMS

@pytest.mark.parametrize("kind", KINDS)
def test_streams_past_the_limit_are_refused_and_the_others_served(tight_server, tight_probe,
                                                                   site_id, tls_files, kind):
    """RFC 9113 5.1.2: RST_STREAM REFUSED_STREAM for the excess (not h2's GOAWAY, which took
    the connection's other streams with it). Sent before the server's SETTINGS are read."""
    marker = f"streams-{kind}"
    excess = ROWS["h2_max_streams"].figures["excess"]
    with Watch(tight_server, tight_probe, site_id, marker) as watch:
        client = Raw(_sock(tight_server, tls_files, kind))
        # In one write: the server sees them all before the first is answered.
        streams = [client.request(_path(site_id, marker, n), flush=False)
                   for n in range(STREAMS + excess)]
        client.flush()
        done = lambda: all(client.response(s)[1] for s in streams)  # noqa: E731
        assert client.wait(done, timeout=30)
        assert client.resets() == {s: ERRORS.REFUSED_STREAM for s in streams[STREAMS:]}
        assert [client.response(s)[0] for s in streams[:STREAMS]] == [200] * STREAMS
        assert client.goaway() is None
        client.close()
    assert watch.published() == STREAMS


# Zero windows, clients that do not read

ZERO_WINDOW = ROWS["zero_window"].figures

def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("kind", KINDS)
def test_zero_window_download_is_not_buffered_and_times_out(tight_server, tight_probe, site_id,
                                                             big_file, tls_files, kind):
    """INITIAL_WINDOW_SIZE 0, then the 100 MB file: one chunk is read, nothing sent, and the
    idle timeout closes the connection (it waited for ever, the stream being open)."""
    marker = f"zero-window-{kind}"
    with Watch(tight_server, tight_probe, site_id, marker, ZERO_WINDOW["rss_mb"]):
        client = Raw(_sock(tight_server, tls_files, kind),
                     {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        begin = time.monotonic()
        stream = client.request(f"{big_file['path']}/@@download/file?attack={marker}")
        assert client.wait(lambda: client.response(stream)[0], timeout=10) == 200
        assert client.wait(lambda: client.closed, timeout=IDLE_TIMEOUT + 10)
        assert client.goaway() is not None
        print(f"closed after {client.closed_at - begin:.1f} s")
        assert client.closed_at - begin < IDLE_TIMEOUT + 5
        assert not any(isinstance(e, h2.events.DataReceived) and e.data for e in client.events)


@pytest.mark.parametrize("kind", KINDS)
def test_page_finished_behind_a_zero_window_does_not_spin_the_reactor(tight_server, tight_probe,
                                                                       site_id, tls_files, kind):
    """Twisted's sending loop picked a finished response with a shut window again and again,
    sending nothing (and resetting the idle timeout): 100% CPU until the client went away."""
    marker = f"zero-window-page-{kind}"
    assert timed_get(tight_server.url(f"/{site_id}"), timeout=30)[1] == 200
    client = Raw(_sock(tight_server, tls_files, kind),
                 {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    begin = time.monotonic()
    stream = client.request(_path(site_id, marker))
    assert client.wait(lambda: client.response(stream)[0], timeout=10) == 200
    with paused(tight_probe):  # its pages would show in the CPU time measured
        cpu = _cpu_seconds(tight_server.pid)
        time.sleep(IDLE_TIMEOUT - 1)
        used = _cpu_seconds(tight_server.pid) - cpu
    assert used < 0.25 * (IDLE_TIMEOUT - 1), f"{used:.2f} s of CPU while the client waited"
    assert client.wait(lambda: client.closed, timeout=10)
    assert client.goaway() is not None
    assert client.closed_at - begin < IDLE_TIMEOUT + 5


@pytest.mark.parametrize("kind", KINDS)
def test_huge_window_and_no_reading_does_not_queue_the_file(tight_server, tight_probe, site_id,
                                                             big_file, tls_files, kind):
    """A 2 GB window and a client that does not read: Twisted queued all 100 MB in memory
    (the RSS bound catches that; what reached the client is bounded by the kernels' buffers)."""
    marker = f"no-reading-{kind}"
    with Watch(tight_server, tight_probe, site_id, marker, ZERO_WINDOW["rss_mb"]):
        client = Raw(_sock(tight_server, tls_files, kind),
                     {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)
        client.flush()
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        begin = time.monotonic()
        client.request(f"{big_file['path']}/@@download/file?attack={marker}")
        time.sleep(IDLE_TIMEOUT + 2)  # not reading: the server's buffers fill
    # Idle timeout, GOAWAY that cannot be written, then Twisted's abortTimeout (15 s).
    client.conn = None
    assert client.wait(lambda: client.closed, timeout=IDLE_TIMEOUT + 30)
    print(f"closed after {client.closed_at - begin:.1f} s, {len(client.received) / MB:.1f} MB read")
    assert len(client.received) < 50 * MB


# Protocol errors

@pytest.mark.parametrize("kind", KINDS)
def test_garbage_after_the_preface_is_a_protocol_error(server, probe, site_id, tls_files, kind):
    """RFC 9113 3.4: the preface must be followed by SETTINGS."""
    marker = f"garbage-{kind}"
    with Watch(server, probe, site_id, marker):
        client = Raw(_sock(server, tls_files, kind), preface=False)
        client.send(PREFACE + b"GARBAGE GARBAGE GARBAGE\r\n" * 100)
        assert client.wait(client.goaway) == ERRORS.PROTOCOL_ERROR
        assert client.wait(lambda: client.closed, timeout=5)
        client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_frames_announced_larger_than_max_frame_size_are_refused_at_once(server, probe, site_id,
                                                                          tls_files, kind):
    """h2 waited for all 16 MB of such a frame before checking its length; 20 connections
    made the server hold 320 MB (with 4 MB each sent here: 80 MB, over the RSS bound)."""
    marker = f"frame-size-{kind}"
    header = b"\xff\xff\xff\x00\x00\x00\x00\x00\x01"  # DATA on stream 1, 16 MB
    payload = b"\x00" * (4 * MB)
    figures = ROWS["h2_frame_errors"].figures
    with Watch(server, probe, site_id, marker, figures["rss_mb"]):
        client = Raw(_sock(server, tls_files, kind))
        client.send(header)
        assert client.wait(client.goaway) == ERRORS.FRAME_SIZE_ERROR
        client.close()
        clients = []
        for _ in range(figures["clients"]):
            client = Raw(_sock(server, tls_files, kind))
            client.send(header)
            client.send(payload)
            clients.append(client)
        for client in clients:
            assert client.wait(client.goaway) == ERRORS.FRAME_SIZE_ERROR
            client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_data_on_a_closed_stream_is_a_stream_closed_error(server, probe, site_id, tls_files, kind):
    """RFC 9113 5.1: RST_STREAM STREAM_CLOSED, and the connection serves on."""
    marker = f"closed-stream-{kind}"
    with Watch(server, probe, site_id, marker) as watch:
        client = Raw(_sock(server, tls_files, kind))
        first = client.request(_path(site_id, marker, 1))
        assert client.wait(lambda: client.response(first)[1])
        client.conn = None  # it would refuse the answer to a frame it did not send
        client.send(DataFrame(first, b"late", flags=["END_STREAM"]).serialize())
        assert client.wait(lambda: first in client.resets())
        assert client.resets()[first] == ERRORS.STREAM_CLOSED
        client.send(PingFrame(0, b"still on").serialize())
        assert client.wait(lambda: any(isinstance(f, PingFrame) and f.opaque_data == b"still on"
                                       for f in client.frames()))
        assert client.goaway() is None and not client.closed
        client.close()
    assert watch.published() == 1


# The TLS port: not TLS, and TLS that never finishes

def _tls_port(server):
    return socket.create_connection(("127.0.0.1", server.ports["https"]), timeout=10)


def _closed_within(sock, seconds, begin=None):
    """Seconds from ``begin`` (default: now) until the server closed ``sock`` (reading what it
    sends), or None."""
    begin = time.monotonic() if begin is None else begin
    sock.settimeout(0.1)
    received = b""
    while time.monotonic() - begin < seconds:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - begin, received
        if not data:
            return time.monotonic() - begin, received
        received += data
    return None, received


@pytest.mark.parametrize("data", [
    b"GARBAGE GARBAGE GARBAGE\r\n\r\n",
    b"\x00" * 4096,
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
])
def test_not_tls_on_the_tls_port_is_closed_promptly(tight_server, tight_probe, site_id, data):
    """Refused by the TLS layer, not left to header-timeout: closed without an answer (no TLS
    alert, no HTTP response: the bytes are not a ClientHello)."""
    marker = f"not-tls-{data[:3].hex()}"
    with Watch(tight_server, tight_probe, site_id, marker):
        with _tls_port(tight_server) as sock:
            sock.sendall(data)
            seconds, answer = _closed_within(sock, HEADER_TIMEOUT + TLS["slack"])
            record("http2_hostile", f"{marker}-close", closed_after_s=seconds and round(seconds, 3),
                   answer=answer[:40].hex())
            assert seconds is not None and seconds < HEADER_TIMEOUT, (seconds, answer)
            assert answer == b"", answer


def _client_hello():
    """The first flight of a real TLS handshake."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("first", [b"", "client hello", "half a client hello"])
def test_tls_handshake_that_never_finishes_is_closed(tight_server, tight_probe, site_id, first):
    """Nothing, a ClientHello or half of one, then silence: closed after header-timeout."""
    if first == "client hello":
        first = _client_hello()
    elif first == "half a client hello":
        hello = _client_hello()
        first = hello[:len(hello) // 2]
    marker = f"tls-stall-{len(first)}"
    with Watch(tight_server, tight_probe, site_id, marker):
        socks = [(time.monotonic(), _tls_port(tight_server)) for _ in range(20)]
        for _, sock in socks:
            sock.sendall(first)
        for opened, sock in socks:
            seconds, answer = _closed_within(sock, HEADER_TIMEOUT + 10, begin=opened)
            assert seconds is not None, "still open"
            # header-timeout counts from the server's accept, after our connect
            assert HEADER_TIMEOUT - 0.1 <= seconds < HEADER_TIMEOUT + TLS["slack"], seconds
            sock.close()
