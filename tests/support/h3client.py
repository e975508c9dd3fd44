"""An HTTP/3 client for the tests: aioquic's asyncio client, one QUIC connection, many streams.

``H3Client`` is an ``aioquic.asyncio.QuicConnectionProtocol``; ``session`` connects it to a
txzserver's UDP port and verifies the server with the tests' CA.
"""

import asyncio
import contextlib
import hashlib

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3 import events as h3events
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as quicevents
from aioquic.quic.configuration import QuicConfiguration


class Response:
    """One stream's answer: headers, the body's size and sha256 (the body kept when small)."""

    def __init__(self):
        self.headers = {}
        self.size = 0
        self.sha = hashlib.sha256()
        self.body = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    @property
    def status(self):
        return int(self.headers.get(b":status", b"0"))

    def add(self, data, keep):
        self.size += len(data)
        self.sha.update(data)
        if keep:
            self.body += data


class H3Client(QuicConnectionProtocol):
    """Sends requests, collects responses by stream; ``closed`` is the CONNECTION_CLOSE seen
    (a ConnectionTerminated event) once the server closes. ``reading = False`` drops every
    datagram that arrives: a client that has stopped reading."""

    keep_limit = 1 << 20
    reading = True
    #: the size of the largest datagram received (the server's path MTU discovery)
    largest_datagram = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses = {}
        self.closed = asyncio.get_running_loop().create_future()

    def datagram_received(self, data, addr):
        if self.reading:
            self.largest_datagram = max(self.largest_datagram, len(data))
            super().datagram_received(data, addr)

    def request(self, path, method=b"GET", headers=(), authority=b"localhost"):
        """Send a request on a new stream; its ``Response``."""
        stream_id = self._quic.get_next_available_stream_id()
        self.h3.send_headers(stream_id, [
            (b":method", method), (b":scheme", b"https"), (b":authority", authority),
            (b":path", path.encode() if isinstance(path, str) else path), *headers,
        ], end_stream=True)
        response = self.responses[stream_id] = Response()
        response.stream_id = stream_id
        self.transmit()
        return response

    async def get(self, path, headers=(), timeout=60):
        response = self.request(path, headers=headers)
        return await asyncio.wait_for(response.done, timeout)

    def quic_event_received(self, event):
        if isinstance(event, quicevents.ConnectionTerminated):
            if not self.closed.done():
                self.closed.set_result(event)
            for response in self.responses.values():
                if not response.done.done():
                    response.done.set_exception(ConnectionError(event.reason_phrase))
        for h3event in self.h3.handle_event(event):
            response = self.responses.get(getattr(h3event, "stream_id", None))
            if response is None:
                continue
            if isinstance(h3event, h3events.HeadersReceived):
                response.headers.update(h3event.headers)
            elif isinstance(h3event, h3events.DataReceived):
                response.add(h3event.data, response.size < self.keep_limit)
            if getattr(h3event, "stream_ended", False) and not response.done.done():
                response.done.set_result(response)


@contextlib.asynccontextmanager
async def session(port, ca, host="127.0.0.1", idle_timeout=60.0, client=None,
                  max_stream_data=None):
    """An ``H3Client`` (or the ``client`` class given) connected to ``host:port`` (server
    name "localhost", checked with ``ca``); ``max_stream_data``: its initial stream window."""
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost",
                               idle_timeout=idle_timeout)
    if max_stream_data is not None:
        config.max_stream_data = max_stream_data
    config.load_verify_locations(str(ca))
    async with connect(host, port, configuration=config, create_protocol=client or H3Client,
                       wait_connected=True) as client:
        yield client


def run(coroutine, timeout=300):
    """Run ``coroutine`` on a fresh asyncio loop (the test's own thread)."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))
