"""The bench's HTTP/3 clients (Debian's h2load is built without QUIC): a whole download of one
URL by libcurl (curl_cffi's build, with ngtcp2 and nghttp3: QUIC in C, as h2load is for the
TCP rows) or by aioquic's client, and slow readers (aioquic) whose stream window grows at a
set rate, as a browser tab taking a download at that speed grants it (QUIC flow control, not
a dropped packet).

aioquic's client runs in Python beside the server on the same cores: its download figure is
client and server together (the client spends more CPU per GiB than the server); libcurl's is
mostly the server, as h2load's rows are.
"""

import asyncio
import threading
import time
from urllib.parse import urlsplit

from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY
from aioquic.quic.packet import QuicFrameType

from tests.support.h3client import H3Client, session

#: A slow reader's first window; it then grows by ``rate`` bytes a second.
FIRST_WINDOW = 256 * 1024
#: The window moves in steps of a twentieth of a second's reading, at least 64 KiB, as a
#: browser's moves when the application has consumed part of it. Moved to the clock's every
#: microsecond, it put a new MAX_STREAM_DATA in each of the client's packets, the server
#: acknowledged each, and the two played ping-pong at full speed (8 readers took the server's
#: reactor thread whole with no page asked).
WINDOW_STEPS_PER_SECOND = 20
MIN_WINDOW_STEP = 64 * 1024


def download(url, ca):
    """(seconds, body bytes) of one HTTP/3 GET of ``url``, the handshake not counted."""
    parts = urlsplit(url)

    async def go():
        async with session(parts.port, ca, idle_timeout=120) as client:
            client.keep_limit = 0
            begin = time.monotonic()
            response = await client.get(parts.path, timeout=600)
            return time.monotonic() - begin, response

    seconds, response = asyncio.run(go())
    if response.status != 200:
        raise RuntimeError(f"HTTP/3 download of {url}: status {response.status}")
    return seconds, response.size


def curl_download(url, ca, http3=True):
    """(seconds, body bytes) of one GET of ``url`` by libcurl over QUIC only (no fallback to
    TCP), or with ``http3=False`` over HTTP/2 and TLS; connection setup included as in
    h2load's figures."""
    from curl_cffi import Curl, CurlHttpVersion, CurlInfo, CurlOpt

    received = 0

    def count(chunk):
        nonlocal received
        received += len(chunk)
        return len(chunk)

    curl = Curl()
    try:
        curl.setopt(CurlOpt.URL, url.encode())
        curl.setopt(CurlOpt.HTTP_VERSION, CurlHttpVersion.V3ONLY if http3 else CurlHttpVersion.V2TLS)
        curl.setopt(CurlOpt.CAINFO, str(ca).encode())
        curl.setopt(CurlOpt.WRITEFUNCTION, count)
        begin = time.monotonic()
        curl.perform()
        seconds = time.monotonic() - begin
        status, version = curl.getinfo(CurlInfo.RESPONSE_CODE), curl.getinfo(CurlInfo.HTTP_VERSION)
    finally:
        curl.close()
    wanted = CurlHttpVersion.V3 if http3 else CurlHttpVersion.V2_0
    if status != 200 or version != wanted:
        raise RuntimeError(f"libcurl's download of {url}: status {status}, version {version}")
    return seconds, received


class PacedClient(H3Client):
    """An H3Client whose request streams get ``rate`` bytes/s of window after the first."""

    rate = 1_000_000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.begin = time.monotonic()
        self._quic._write_stream_limits = self._paced_limits

    def _paced_limits(self, builder, space, stream):
        """aioquic's _write_stream_limits with the window set by the clock (it doubles the
        window as data arrives)."""
        if not stream.max_stream_data_local:
            return
        step = max(MIN_WINDOW_STEP, int(self.rate) // WINDOW_STEPS_PER_SECOND)
        grown = int(self.rate * (time.monotonic() - self.begin)) // step * step
        allowed = FIRST_WINDOW + grown
        stream.max_stream_data_local = max(stream.max_stream_data_local, allowed)
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(QuicFrameType.MAX_STREAM_DATA,
                                      capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                                      handler=self._quic._on_max_stream_data_delivery,
                                      handler_args=(stream,))
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local


class SlowReaders(threading.Thread):
    """``count`` HTTP/3 connections, each downloading ``path`` at about ``rate`` bytes/s, on
    one asyncio loop in this thread until ``stop()``."""

    def __init__(self, port, path, ca, count, rate):
        super().__init__(daemon=True)
        self.port, self.path, self.ca, self.count, self.rate = port, path, ca, count, rate
        self.responses = []
        self.error = None
        self._stopping = threading.Event()

    def stop(self):
        self._stopping.set()

    def received(self):
        return sum(response.size for response in self.responses)

    def run(self):
        try:
            asyncio.run(self._main())
        except Exception as exc:  # reported with the phase
            self.error = exc

    async def _main(self):
        PacedClient.rate = self.rate
        async with asyncio.TaskGroup() as group:
            for _ in range(self.count):
                group.create_task(self._one())

    async def _one(self):
        async with session(self.port, self.ca, idle_timeout=120, client=PacedClient,
                           max_stream_data=FIRST_WINDOW) as client:
            client.keep_limit = 0
            response = client.request(self.path)
            # it fails with ConnectionError when the reader leaves: expected, not reported
            response.done.add_done_callback(lambda done: done.cancelled() or done.exception())
            self.responses.append(response)
            while not self._stopping.is_set():
                client.transmit()  # the window grows with the clock: tell the server
                await asyncio.sleep(0.05)
