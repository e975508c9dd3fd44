"""An aioquic HTTP/3 client and an ``H3Endpoint`` exchanging datagrams in memory, timers on a
MemoryReactorClock: the unit tests of the HTTP/3 channel (test_h3) and of WebSocket over
HTTP/3 (test_wsh3)."""

from aioquic.buffer import Buffer
from aioquic.h3 import events as h3events
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as quicevents
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_transport_parameters, push_quic_transport_parameters
from twisted.internet.address import IPv4Address

from txzserver.config.datatypes import Listener
from txzserver.server.h3listen import H3Endpoint, quic_configuration
from txzserver.server.quicmtu import BASE
from tests.support.tls import make_certificates

from .helpers import Echo, ThreadsReactor, make_settings, make_site
from .wsframes import Endpoint

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 4433)


class UDPTransport:
    """What the endpoint writes: (datagram, address) pairs."""

    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append((data, addr))

    def getHost(self):
        return IPv4Address("UDP", *SERVER)


def announce_max_udp_payload(client, size):
    """Make aioquic's ``client`` (not yet connected) announce max_udp_payload_size ``size``
    in its transport parameters, as browsers do; aioquic's own announces none."""
    serialize = client._serialize_transport_parameters

    def with_max_udp_payload():
        params = pull_quic_transport_parameters(Buffer(data=serialize()))
        params.max_udp_payload_size = size
        buf = Buffer(capacity=4096)
        push_quic_transport_parameters(buf, params)
        return buf.data

    client._serialize_transport_parameters = with_max_udp_payload


class Pair:
    """An aioquic HTTP/3 client and the server endpoint, exchanging datagrams in memory."""

    def __init__(self, tmp_path, websocket_of=None, client_window=None, resource=None,
                 max_datagram_size=BASE, link_mtu=None, client_max_udp_payload=None,
                 **overrides):
        """``websocket_of``: pytest's monkeypatch for a site with a WebSocket service
        (wsframes.Endpoint, its ZopeApp behind), else the site answers with ``resource``
        (Echo when not given). ``client_window``: the client's initial flow-control window
        per stream. ``max_datagram_size``: the listener's http3-max-datagram-size;
        ``link_mtu``: server datagrams larger than this are lost on the way (a path's MTU);
        ``client_max_udp_payload``: the client's max_udp_payload_size transport parameter."""
        tmp_path.mkdir(parents=True, exist_ok=True)
        paths = make_certificates(tmp_path)
        listener = Listener("https", "127.0.0.1", SERVER[1], http2=True, http3=True,
                            certificate=str(paths["cert"]), private_key=str(paths["key"]))
        if websocket_of is None:
            self.settings = make_settings(listeners=(listener,), **overrides)
            self.reactor = ThreadsReactor()
            self.resource = Echo() if resource is None else resource
            self.site = make_site(self.resource, settings=self.settings, reactor=self.reactor)
        else:
            self.ws = Endpoint(websocket_of, listeners=(listener,), **overrides)
            self.settings, self.reactor = self.ws.settings, self.ws.reactor
            self.resource, self.site = self.ws.resource, self.ws.site
        self.endpoint = H3Endpoint(self.site, self.settings,
                                   quic_configuration(listener, self.settings),
                                   max_datagram_size=max_datagram_size)
        self.link_mtu = link_mtu
        #: the size of every datagram the server sent, delivered or not
        self.sizes = []
        #: the address the client's datagrams come from (a test may move the client)
        self.client_addr = CLIENT
        #: the address of every datagram the server sent
        self.addresses = []
        self.endpoint.transport = UDPTransport()
        config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                   server_name="localhost")
        if client_window is not None:
            config.max_stream_data = client_window
        config.load_verify_locations(str(paths["ca"]))
        self.client = QuicConnection(configuration=config)
        if client_max_udp_payload is not None:
            announce_max_udp_payload(self.client, client_max_udp_payload)
        self.h3 = H3Connection(self.client)
        self.events = []
        self.client.connect(SERVER, now=self.reactor.seconds())
        self.pump()

    def pump(self, rounds=50):
        """Exchange datagrams (and run the server's zero-delay calls) until both are quiet;
        the clock moves 10 ms a round (aioquic paces its packets)."""
        for _ in range(rounds):
            moved = False
            self.reactor.advance(0.01)
            timer = self.client.get_timer()
            if timer is not None and timer <= self.reactor.seconds():
                self.client.handle_timer(now=self.reactor.seconds())
            for data, _ in self.client.datagrams_to_send(now=self.reactor.seconds()):
                self.endpoint.datagramReceived(data, self.client_addr)
                moved = True
            self.reactor.advance(0)
            sent, self.endpoint.transport.sent = self.endpoint.transport.sent, []
            for data, addr in sent:
                self.sizes.append(len(data))
                self.addresses.append(addr)
                if self.link_mtu is None or len(data) <= self.link_mtu:
                    self.client.receive_datagram(data, SERVER, now=self.reactor.seconds())
                moved = True
            event = self.client.next_event()
            while event is not None:
                self.events.append(event)
                self.events.extend(self.h3.handle_event(event))
                event = self.client.next_event()
            if not moved and self.client.get_timer() is None:
                return

    def get(self, path=b"/", extra=()):
        stream_id = self.client.get_next_available_stream_id()
        self.h3.send_headers(stream_id, [
            (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
            (b":path", path), *extra], end_stream=True)
        return stream_id

    def stop_reading(self):
        """The client grants no more flow-control credit, as one whose application reads
        nothing does (aioquic's own client raises its windows as data arrives, whoever reads
        it: that is turned off on this client object). It still acknowledges packets."""
        self.client._write_stream_limits = lambda builder, space, stream: None

    def connect(self, path=b"/ws", extra=(), protocol=b"websocket"):
        """An extended CONNECT (RFC 9220) for ``path`` on a new stream (not ended)."""
        stream_id = self.client.get_next_available_stream_id()
        fields = [(b":method", b"CONNECT"), (b":scheme", b"https"), (b":authority", b"localhost"),
                  (b":path", path)]
        if protocol is not None:
            fields.insert(1, (b":protocol", protocol))
        self.h3.send_headers(stream_id, [*fields, (b"sec-websocket-version", b"13"), *extra])
        return stream_id

    def send(self, stream_id, data, end_stream=False):
        self.h3.send_data(stream_id, data, end_stream=end_stream)
        self.pump()

    def ended(self, stream_id):
        return any(getattr(event, "stream_ended", False) for event in self.events
                   if getattr(event, "stream_id", None) == stream_id)

    def resets(self, stream_id):
        """The error codes of the server's resets of ``stream_id``."""
        return [event.error_code for event in self.events
                if isinstance(event, quicevents.StreamReset) and event.stream_id == stream_id]

    def response(self, stream_id):
        """(headers dict, body) received on ``stream_id``."""
        headers, body = {}, b""
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h3events.HeadersReceived):
                headers.update(event.headers)
            elif isinstance(event, h3events.DataReceived):
                body += event.data
        return headers, body

    def terminated(self):
        return [e for e in self.events if isinstance(e, quicevents.ConnectionTerminated)]
