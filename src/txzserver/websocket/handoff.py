"""The one place where a connection (HTTP/1.1) or a stream (HTTP/2 and HTTP/3, RFC 8441 and
9220) is handed over to a WebSocket protocol.

Twisted Web has parsed the upgrade request; we detach its channel from the transport and
connect the Autobahn protocol instead, then replay the request bytes so Autobahn performs
the opening handshake itself (the approach of autobahn.twisted.resource.WebSocketResource,
plus what our own HTTP/1.1 channel needs: ``release_transport()`` cancels its timeout and
releases its producer registration, and the connection leaves the HTTP connection count).
The channel's references to its request and its connection are dropped, so that the HTTP side is
freed as soon as the request returns, without the garbage collector.
"""

from twisted.protocols.policies import ProtocolWrapper


def is_websocket_upgrade(request):
    upgrade = (request.getHeader(b"upgrade") or b"").lower()
    connection = (request.getHeader(b"connection") or b"").lower()
    return upgrade == b"websocket" and b"upgrade" in connection and request.method == b"GET"


def replayed_request(request):
    """The handshake request as bytes, for Autobahn to parse again."""
    lines = [request.method + b" " + request.uri + b" HTTP/1.1"]
    for name, values in request.requestHeaders.getAllRawHeaders():
        lines.append(name + b": " + b",".join(values))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def hand_off(request, protocol):
    """Give ``request``'s connection to ``protocol``; False if it cannot be taken over."""
    if request.clientproto in (b"HTTP/2", b"HTTP/3"):
        return _hand_off_stream(request, protocol)
    channel = request.channel
    transport = getattr(channel, "transport", None)
    if transport is None or not hasattr(channel, "release_transport"):
        return False  # not our HTTP/1.1 channel: nothing to take over
    channel.release_transport()
    channel.transport = None
    if isinstance(transport, ProtocolWrapper):  # TLS: the wrapper feeds our channel
        transport.wrappedProtocol = protocol
    else:
        transport.protocol = protocol
    connection = channel.connection
    if connection is not None:
        connection.detach()  # leaves the HTTP connection count, forgets the channel
    # The HTTP side, done with, is freed by reference counting as the request returns instead
    # of by the collector: the channel and its request refer to each other. Left as cycles,
    # they reached the collector's oldest generation during a storm, whose full passes then
    # scanned every connection (and RSS held them until then).
    channel.requests = []
    protocol.makeConnection(transport)
    transport.resumeProducing()
    protocol.dataReceived(replayed_request(request))
    return True


def _hand_off_stream(request, protocol):
    """HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220): the extended CONNECT's stream becomes the
    protocol's transport (the connection goes on serving its other streams); False for an
    Upgrade request."""
    transport = request.protocol.stream_transport(request)
    if transport is None:
        return False
    transport.protocol = protocol
    protocol.makeConnection(transport)
    protocol.dataReceived(replayed_request(request))
    return True
