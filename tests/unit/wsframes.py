"""WebSocket helpers for the unit tests: framing, and an endpoint without sockets.

Framing: enough of RFC 6455 to talk to the server over a StringTransport (masked client
frames, no extensions, no client-side fragmentation; the parser accepts what Autobahn sends).
Endpoint: a ZopeSite whose ZopeResource has a NotificationService, a synchronous worker
pool and a MemoryReactorClock; Client reads the handshake answer and the frames.
"""

import base64
import hashlib
import json
import os
import struct

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.support.threadpools import SynchronousThreadPool

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key):
    """The Sec-WebSocket-Accept value the server must answer to ``key`` (bytes)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def new_key():
    return base64.b64encode(os.urandom(16))


def handshake(path=b"/ws", key=None, host=b"example.org", origin=None, headers=(), upgrade=True,
              method=b"GET"):
    """The bytes of an HTTP/1.1 GET asking to upgrade to WebSocket."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: " + host]
    if upgrade:
        lines += [b"Upgrade: websocket", b"Connection: Upgrade",
                  b"Sec-WebSocket-Key: " + (key or new_key()), b"Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append(b"Origin: " + origin)
    lines += list(headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def client_frame(payload, opcode=TEXT, fin=True, mask=b"\x01\x02\x03\x04"):
    """One masked frame from a client."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def client_json(message):
    return client_frame(json.dumps(message))


def client_close(code=1000, reason=b""):
    return client_frame(struct.pack("!H", code) + reason, opcode=CLOSE)


def parse_frames(data):
    """[(opcode, payload)] of the complete server frames in ``data``, and the rest."""
    frames = []
    while len(data) >= 2:
        opcode = data[0] & 0x0F
        masked = data[1] & 0x80
        n = data[1] & 0x7F
        offset = 2
        if n == 126:
            if len(data) < 4:
                break
            n = struct.unpack("!H", data[2:4])[0]
            offset = 4
        elif n == 127:
            if len(data) < 10:
                break
            n = struct.unpack("!Q", data[2:10])[0]
            offset = 10
        mask = b""
        if masked:
            mask = data[offset:offset + 4]
            offset += 4
        if len(data) < offset + n:
            break
        payload = data[offset:offset + n]
        if masked:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append((opcode, payload))
        data = data[offset + n:]
    return frames, data


def close_code(payload):
    """The status code of a close frame's payload (None when it has none)."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


# A WebSocket endpoint on a ZopeSite, without sockets or threads

class Transport(StringTransport):
    """StringTransport that, like Twisted's TCP and TLS transports, accepts
    ``unregisterProducer`` without a producer (Autobahn calls it when dropping)."""

    def unregisterProducer(self):
        self.producer = None
        self.streaming = None


PRINCIPAL = {"userid": "jane", "tokens": ["Member", "user:jane"], "site_path": "/Plone"}


class ZopeApp:
    """A tiny WSGI app: the principal view answers ``principal`` (or ``status``), every
    other path "zope <PATH_INFO>". It records the environs it saw."""

    def __init__(self, principal=None, status="200 OK"):
        self.principal = PRINCIPAL if principal is None else principal
        self.status = status
        self.environs = []

    def __call__(self, environ, start_response):
        self.environs.append(environ)
        path = environ["PATH_INFO"]
        if path.endswith("/@@txzserver-principal"):
            start_response(self.status, [("Content-Type", "application/json")])
            return [json.dumps(self.principal).encode("utf-8")]
        body = b"zope " + path.encode("utf-8")
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]


class Endpoint:
    """A ZopeSite whose ZopeResource hands WebSocket upgrades to a NotificationService.

    The worker pool runs calls at once, the reactor's callFromThread too, and txaio (which
    Autobahn uses for its timers) is pointed at the same MemoryReactorClock.
    """

    def __init__(self, monkeypatch, websocket=None, app=None, instance_name="inst-1", secure=False,
                 **overrides):
        import txaio

        from txzserver.config.datatypes import WebSocketSettings
        from txzserver.server.environ import ProxyTrust
        from txzserver.server.publisher import ZopeResource
        from txzserver.server.shutdown import InFlight
        from txzserver.websocket.service import NotificationService

        from .helpers import ThreadsReactor, make_settings, make_site

        self.reactor = ThreadsReactor()
        monkeypatch.setattr(txaio.config, "loop", self.reactor)
        self.app = app or ZopeApp()
        self.pool = SynchronousThreadPool()
        self.settings = make_settings(instance_name=instance_name, **overrides)
        self.service = NotificationService(self.reactor, self.pool, websocket or WebSocketSettings(),
                                           instance_name)
        self.service.app = self.app
        self.resource = ZopeResource(self.reactor, self.pool, self.app, self.settings, ProxyTrust(()),
                                     secure, InFlight(), websocket=self.service)
        self.site = make_site(self.resource, settings=self.settings, reactor=self.reactor)

    @property
    def hub(self):
        return self.service.hub

    @property
    def open_connections(self):
        return self.site.counter.open

    def connect(self, path=b"/ws", peer=None, **handshake_options):
        """A Client that sent a WebSocket handshake for ``path`` (from ``peer``, an address)."""
        from .helpers import HOST, PEER, connect, spin
        transport = Transport(hostAddress=HOST, peerAddress=peer or PEER)
        channel, _ = connect(self.site, transport)
        key = handshake_options.pop("key", None) or new_key()
        channel.dataReceived(handshake(path, key=key, **handshake_options))
        spin(self.reactor)
        return Client(channel, transport, key)


class Client:
    """The client end of one connection: what the server wrote, and frames to send it."""

    def __init__(self, channel, transport, key):
        self.channel = channel
        self.transport = transport
        self.key = key
        head, sep, rest = transport.value().partition(b"\r\n\r\n")
        self.head = head if sep else b""
        lines = self.head.split(b"\r\n")
        self.status = int(lines[0].split(b" ")[1]) if self.head else None
        self.status_line = lines[0] if self.head else b""
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = rest
        self._pending = rest if self.status == 101 else b""
        transport.clear()

    @property
    def protocol(self):
        """The protocol the transport now delivers to (the WebSocket one after a hand-off)."""
        return getattr(self.transport, "protocol", self.channel)

    def frames(self):
        """[(opcode, payload)] of the frames the server sent since the last call."""
        data = self._pending + self.transport.value()
        self.transport.clear()
        frames, self._pending = parse_frames(data)
        return frames

    def messages(self):
        """The JSON text messages the server sent since the last call."""
        out = []
        for opcode, payload in self.frames():
            assert opcode == TEXT, (opcode, payload)
            out.append(json.loads(payload))
        return out

    def send(self, data):
        self.protocol.dataReceived(data)

    def send_json(self, message):
        self.send(client_json(message))

    def lose(self):
        """The socket closes (as the reactor reports it to the transport's protocol)."""
        self.protocol.connectionLost(Failure(ConnectionDone()))
