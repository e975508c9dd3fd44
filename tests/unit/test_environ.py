"""txzserver.server.environ: the WSGI environ Zope's publisher gets."""

import io
import sys

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from txzserver.server.environ import (
    FORWARDED_HEADERS, SERVER_SOFTWARE, ProxyTrust, build_environ, header_environ,
)

from .helpers import H2Client, connect, feed, make_site, parse_http1


def request(uri=b"/", method=b"GET", headers=(), peer="192.0.2.7", local_port=8080,
            clientproto=b"HTTP/1.1"):
    req = DummyRequest([])
    req.uri = uri
    req.method = method
    req.clientproto = clientproto
    req.client = IPv4Address("TCP", peer, 40000)
    req.getHost = lambda: IPv4Address("TCP", "10.0.0.1", local_port)
    for name, value in headers:
        req.requestHeaders.addRawHeader(name, value)
    return req


def environ(req, body=b"", trust=(), secure=False):
    return build_environ(req, io.BytesIO(body), len(body), secure=secure, trust=ProxyTrust(trust))


def test_basic_keys():
    env = environ(request(b"/a/b?x=1&y=%20", headers=[(b"Host", b"example.org:8080")]))
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"] == SERVER_SOFTWARE
    assert env["SERVER_NAME"] == "example.org"
    assert env["SERVER_PORT"] == "8080"
    assert env["REMOTE_ADDR"] == "192.0.2.7"
    assert env["REMOTE_PORT"] == "40000"
    assert env["HTTP_HOST"] == "example.org:8080"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.errors"] is sys.stderr
    assert "CONTENT_LENGTH" not in env
    assert "CONTENT_TYPE" not in env
    for key, value in env.items():
        if key.isupper():
            assert isinstance(value, str), key


def test_server_port_is_the_local_port_not_the_host_header():
    """Zope compares SERVER_PORT with the WebDAV source port."""
    env = environ(request(headers=[(b"Host", b"example.org")], local_port=1980))
    assert env["SERVER_PORT"] == "1980"
    assert env["SERVER_NAME"] == "example.org"


def test_path_info_is_unquoted_latin1():
    env = environ(request(b"/caf%C3%A9/a%2Fb/%20x?q=%C3%A9"))
    assert env["PATH_INFO"] == b"/caf\xc3\xa9/a/b/ x".decode("latin-1")
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/a/b/ x"
    assert env["QUERY_STRING"] == "q=%C3%A9"


@pytest.mark.parametrize("uri, path, query", [
    (b"http://example.org/a%20b?x=1", "/a b", "x=1"),
    (b"https://example.org:8443", "/", ""),
    (b"http://example.org?x", "/", "x"),
])
def test_absolute_form_request_target(uri, path, query):
    env = environ(request(uri))
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == (path, query)


def test_header_names_with_underscore_are_dropped():
    env = environ(request(headers=[
        (b"X_Forwarded_For", b"6.6.6.6"), (b"X-Custom", b"yes"), (b"Auth_Token", b"t"),
    ]), trust=["192.0.2.7"])
    assert env["HTTP_X_CUSTOM"] == "yes"
    assert "HTTP_X_FORWARDED_FOR" not in env
    assert "HTTP_AUTH_TOKEN" not in env


def test_header_environ_joins_repeated_headers_and_cookies():
    from twisted.web.http_headers import Headers
    headers = Headers()
    headers.setRawHeaders(b"cookie", [b"a=1", b"b=2"])
    headers.setRawHeaders(b"accept", [b"text/html", b"*/*"])
    headers.setRawHeaders(b"content-type", [b"text/plain"])
    headers.setRawHeaders(b"content-length", [b"3"])
    headers.setRawHeaders(b"transfer-encoding", [b"chunked"])
    env = header_environ(headers)
    assert env == {"HTTP_COOKIE": "a=1; b=2", "HTTP_ACCEPT": "text/html, */*"}


def test_content_type_and_length():
    env = environ(request(method=b"POST", headers=[(b"Content-Type", b"text/plain"),
                                                   (b"Content-Length", b"3")]), body=b"abc")
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env
    assert env["wsgi.input"].read() == b"abc"


def test_empty_body_with_content_length_zero():
    env = environ(request(method=b"POST", headers=[(b"Content-Length", b"0")]))
    assert env["CONTENT_LENGTH"] == "0"


def test_latin1_header_values():
    env = environ(request(headers=[(b"X-Name", b"caf\xe9")]))
    assert env["HTTP_X_NAME"] == "caf\u00e9"


FORWARDED = [
    (b"X-Forwarded-For", b"203.0.113.9, 10.0.0.2"),
    (b"X-Forwarded-Host", b"www.example.org, other"),
    (b"X-Forwarded-Proto", b"HTTPS"),
    (b"X-Forwarded-Port", b"443"),
    (b"Forwarded", b"for=203.0.113.9"),
    (b"Host", b"backend:8080"),
]


def test_forwarded_headers_from_a_trusted_proxy_are_honoured():
    env = environ(request(headers=FORWARDED, peer="10.1.2.3"), trust=["10.0.0.0/8"])
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "www.example.org"
    assert env["SERVER_NAME"] == "www.example.org"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 10.0.0.2"
    assert env["REMOTE_ADDR"] == "10.1.2.3"
    assert env["SERVER_PORT"] == "8080"


def test_forwarded_headers_from_others_are_removed():
    env = environ(request(headers=FORWARDED, peer="192.0.2.7"), trust=["10.0.0.0/8"])
    for key in FORWARDED_HEADERS:
        assert key not in env
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "backend:8080"
    assert env["SERVER_NAME"] == "backend"


def test_forwarded_proto_must_be_http_or_https():
    env = environ(request(headers=[(b"X-Forwarded-Proto", b"gopher")], peer="127.0.0.1"),
                  trust=["127.0.0.1"], secure=True)
    assert env["wsgi.url_scheme"] == "https"


def test_secure_listener_sets_https():
    env = environ(request(), secure=True)
    assert env["wsgi.url_scheme"] == "https"
    assert env["SERVER_NAME"] == "10.0.0.1"


@pytest.mark.parametrize("host, name", [
    ("example.org", "example.org"), ("example.org:81", "example.org"),
    ("[::1]:8080", "[::1]"), ("[::1]", "[::1]"),
])
def test_server_name_from_host(host, name):
    env = environ(request(headers=[(b"Host", host.encode())]))
    assert env["SERVER_NAME"] == name


def test_proxy_trust():
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"])
    assert "127.0.0.1" in trust
    assert "10.200.1.1" in trust
    assert "::1" in trust
    assert "fd00::5" in trust
    assert "192.0.2.1" not in trust
    assert "not-an-address" not in trust
    assert "" not in trust
    assert "127.0.0.1" not in ProxyTrust()


def test_proxy_trust_resolves_host_names(monkeypatch):
    """Zope's trusted-proxy accepts host names (like a compose service name)."""
    import socket
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("172.18.0.5", 0)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", 0, 0, 2))]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    trust = ProxyTrust(["front", "127.0.0.1"])
    assert asked == ["front"]
    assert "172.18.0.5" in trust
    assert "fe80::1" in trust
    assert "127.0.0.1" in trust
    assert "172.18.0.6" not in trust


def test_proxy_trust_unresolvable_name(monkeypatch):
    import socket

    def getaddrinfo(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(ValueError, match="trusted-proxy 'nowhere'"):
        ProxyTrust(["nowhere"])


def test_ipv6_peer():
    req = request()
    req.client = IPv6Address("TCP", "::1", 40001)
    env = build_environ(req, io.BytesIO(), 0, secure=False, trust=ProxyTrust(["::1"]))
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("::1", "40001")


# Through a real Twisted request

class Capture(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.environs = []
        self.bodies = []

    def render(self, request):
        body = request.content
        length = body.seek(0, 2)
        body.seek(0)
        self.environs.append(build_environ(request, body, length, secure=False,
                                           trust=ProxyTrust()))
        self.bodies.append(self.environs[-1]["wsgi.input"].read())
        return b"ok"


def test_content_length_of_a_chunked_body():
    resource = Capture()
    site = make_site(resource)
    protocol, transport = connect(site)
    feed(protocol, b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   b"Content-Type: text/plain\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
         bytewise=True)
    assert parse_http1(transport.value())[0] == 200
    env = resource.environs[0]
    assert env["CONTENT_LENGTH"] == "7"
    assert "HTTP_TRANSFER_ENCODING" not in env
    assert resource.bodies[0] == b"abcdefg"


def test_cookies_of_a_real_request_are_joined():
    resource = Capture()
    site = make_site(resource)
    protocol, transport = connect(site)
    feed(protocol, b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
    assert resource.environs[0]["HTTP_COOKIE"] == "a=1; b=2"


def test_http2_request_environ():
    resource = Capture()
    site = make_site(resource, h2c=True)
    protocol, transport = connect(site)
    client = H2Client(protocol, transport, site.reactor)
    client.request(1, path="/h2/p%C3%A9?z=1", headers=[("cookie", "a=1"), ("cookie", "b=2")])
    client.flush()
    client.events()
    env = resource.environs[0]
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["PATH_INFO"] == "/h2/p\xc3\xa9"
    assert env["QUERY_STRING"] == "z=1"
    assert env["HTTP_HOST"] == "example.org"
    assert env["SERVER_NAME"] == "example.org"
    assert env["SERVER_PORT"] == "8080"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
