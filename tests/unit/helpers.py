"""Shared helpers for the unit tests: settings, sites, in-memory connections, an h2 client.

Nothing here opens a socket: connections are StringTransports, time is a MemoryReactorClock.
"""

import h2.config
import h2.connection
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web import server
from twisted.web.resource import Resource

from txzserver.config import ConfigError, load
from txzserver.config.datatypes import Listener
from txzserver.config.settings import ServerSettings
from txzserver.server.connection import ConnectionCounter
from txzserver.server.http1 import HTTP1Channel
from txzserver.server.llhttp1 import LLHTTP1Channel
from txzserver.server.site import ZopeSite
from txzserver.zope.instance import render_config

PEER = IPv4Address("TCP", "192.0.2.7", 54321)
HOST = IPv4Address("TCP", "127.0.0.1", 8080)


#: The HTTP/1.1 channels, one per http1-parser.
HTTP1_CHANNELS = (HTTP1Channel, LLHTTP1Channel)
#: The http1-parser of the settings made here; the ``each_http1_parser`` fixture sets it.
HTTP1_PARSER = ServerSettings.http1_parser


def make_settings(**overrides):
    values = {"listeners": (Listener("http", "127.0.0.1", 8080),), "http1_parser": HTTP1_PARSER}
    values.update(overrides)
    return ServerSettings(**values)


class Echo(Resource):
    """Leaf resource answering "<method> <path> <body>" as text/plain; it records requests."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []
        self.bodies = []  # the request.content objects (Twisted drops them after finish)

    def render(self, request):
        self.requests.append(request)
        self.bodies.append(request.content)
        request.setHeader(b"content-type", b"text/plain")
        return b"%s %s %s" % (request.method, request.path, request.content.read())


class ThreadsReactor(MemoryReactorClock):
    """MemoryReactorClock whose callFromThread runs at once (tests run in one thread)."""

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


def make_site(resource=None, settings=None, counter=None, h2c=False, reactor=None, **overrides):
    settings = settings or make_settings(**overrides)
    counter = counter or ConnectionCounter(settings.max_connections)
    reactor = reactor or ThreadsReactor()
    return ZopeSite(resource or Echo(), settings, counter, h2c=h2c, reactor=reactor)


def connect(site, transport=None):
    """A protocol of ``site`` connected to a fresh StringTransport; returns (protocol, transport)."""
    transport = transport or StringTransport(hostAddress=HOST, peerAddress=PEER)
    protocol = site.buildProtocol(PEER)
    protocol.makeConnection(transport)
    return protocol, transport


def feed(protocol, data, bytewise=False):
    if bytewise:
        for i in range(len(data)):
            protocol.dataReceived(data[i:i + 1])
    else:
        protocol.dataReceived(data)


def spin(reactor, times=5):
    """Run the calls scheduled for "now" (HTTP/2 sends its data from a callLater(0) loop)."""
    for _ in range(times):
        reactor.advance(0)


def assert_rejected(site, transport, code, reason):
    """One error response ``code`` naming ``reason``, the connection closing, Zope not asked."""
    answer, _, body = parse_http1(transport.value())
    assert answer == code
    assert reason in body
    assert transport.disconnecting
    assert transport.value().count(b"HTTP/1.1 ") == 1
    assert site.resource.requests == []


def parse_http1(data):
    """(status code, headers dict with lower-case names, body) of one HTTP/1.1 response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    code = int(lines[0].split(b" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return code, headers, body


class H2Client:
    """An h2 client connection speaking to ``protocol`` over its StringTransport."""

    def __init__(self, protocol, transport, reactor):
        self.protocol = protocol
        self.transport = transport
        self.reactor = reactor
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()

    def flush(self, bytewise=False):
        feed(self.protocol, self.conn.data_to_send(), bytewise=bytewise)
        spin(self.reactor)

    def events(self):
        data = self.transport.value()
        self.transport.clear()
        events = self.conn.receive_data(data)
        outgoing = self.conn.data_to_send()
        if outgoing:
            feed(self.protocol, outgoing)
            spin(self.reactor)
        return events

    def request(self, stream_id, method="GET", path="/", body=None, headers=()):
        fields = [(":method", method), (":path", path), (":scheme", "http"),
                  (":authority", "example.org"), *headers]
        self.conn.send_headers(stream_id, fields, end_stream=body is None)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=True)


def responses(events):
    """{stream_id: {"status": int, "headers": dict, "body": bytes, "ended": bool, "reset": code}}."""
    import h2.events
    out = {}
    for event in events:
        sid = getattr(event, "stream_id", None)
        if sid is None:
            continue
        entry = out.setdefault(sid, {"status": None, "headers": {}, "body": b"", "ended": False,
                                     "reset": None})
        if isinstance(event, h2.events.ResponseReceived):
            headers = dict(event.headers)
            entry["status"] = int(headers[b":status"])
            entry["headers"] = headers
            entry["header_list"] = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            entry["body"] += event.data
        elif isinstance(event, h2.events.StreamEnded):
            entry["ended"] = True
        elif isinstance(event, h2.events.StreamReset):
            entry["reset"] = event.error_code
    return out


class ALPNTransport(StringTransport):
    """A TLS-like transport whose ALPN negotiation picked ``negotiatedProtocol``."""

    def __init__(self, protocol):
        super().__init__(hostAddress=HOST, peerAddress=PEER)
        self.negotiatedProtocol = protocol


class Hanging(Resource):
    """Never answers until the test calls ``finish_all``: a request being published."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.pending = []

    def render(self, request):
        self.pending.append(request)
        return server.NOT_DONE_YET

    def finish_all(self):
        for request in self.pending:
            request.write(b"done")
            request.finish()
        self.pending = []


# zope.conf files in an ``instance`` folder (the fixture of tests/unit/conftest.py)

def conf(instance, extra=""):
    """Write the default zope.conf plus ``extra`` into ``instance``; (its path, its text)."""
    path = instance / "etc" / "zope.conf"
    text = render_config(str(instance)) + extra
    path.write_text(text)
    return path, text


def line_of(text, needle):
    """The line number of ``needle`` in ``text`` (as ZConfig counts: from 1)."""
    return text.splitlines().index(needle) + 1


def error(instance, extra):
    """(message, text): loading the zope.conf with ``extra`` fails with a ConfigError that
    names the file."""
    path, text = conf(instance, extra)
    with pytest.raises(ConfigError) as info:
        load(str(path))
    message = str(info.value)
    assert str(path) in message
    return message, text
