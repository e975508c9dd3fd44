"""Many cheap WebSocket clients on one asyncio loop, for load tests and the fan-out benchmark.

A client sends a fixed handshake, reads the 101 and the frames the server sends (unmasked,
unfragmented text, as txzserver sends them) and never sends a frame itself: thousands fit in one
process at a few hundred microseconds of client CPU each. ``on_message(payload, when)`` gets
every message after the welcome with its arrival time (``time.time()``, comparable with the
server's commit time on the same machine).
"""

import asyncio
import json
import struct
import time

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def handshake(host, port, path, headers=()):
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY.decode()}", "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RawClient(asyncio.Protocol):
    def __init__(self, request, opened, on_message=None):
        self.request = request
        self.opened = opened
        self.on_message = on_message
        self.buffer = b""
        self.status = None
        self.welcome = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        when = time.time()
        buffer = self.buffer + data if self.buffer else data
        if self.status is None:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = buffer
                return
            self.status = int(head.split(b" ", 2)[1])
            buffer = rest
            if self.status != 101:
                self.buffer = b""
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(f"handshake answered {self.status}"))
                self.transport.close()
                return
        while len(buffer) >= 2:
            n = buffer[1] & 0x7F
            offset = 2
            if n == 126:
                if len(buffer) < 4:
                    break
                n = struct.unpack("!H", buffer[2:4])[0]
                offset = 4
            elif n == 127:
                if len(buffer) < 10:
                    break
                n = struct.unpack("!Q", buffer[2:10])[0]
                offset = 10
            if len(buffer) < offset + n:
                break
            opcode = buffer[0] & 0x0F
            payload = buffer[offset:offset + n]
            buffer = buffer[offset + n:]
            if opcode == 0x8:  # close
                self.transport.close()
                continue
            if opcode != 0x1:
                continue
            if self.welcome is None:
                self.welcome = json.loads(payload)
                if not self.opened.done():
                    self.opened.set_result(self)
            elif self.on_message is not None:
                self.on_message(payload, when)
        self.buffer = buffer

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the welcome"))

    def close(self):
        if self.transport is not None:
            self.transport.abort()


async def connect(host, port, path, headers=(), on_message=None, timeout=60):
    loop = asyncio.get_running_loop()
    opened = loop.create_future()
    await loop.create_connection(
        lambda: RawClient(handshake(host, port, path, headers), opened, on_message), host, port)
    return await asyncio.wait_for(opened, timeout)


async def connect_many(host, port, path, count, headers=lambda i: (), on_message=None,
                       concurrency=500, timeout=60):
    """``count`` clients, at most ``concurrency`` handshakes in flight; (clients, failures)."""
    gate = asyncio.Semaphore(concurrency)
    clients, failures = [], []

    async def one(i):
        async with gate:
            try:
                clients.append(await connect(host, port, path, headers(i), on_message, timeout))
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                failures.append(repr(exc))

    await asyncio.gather(*(one(i) for i in range(count)))
    return clients, failures
