"""Build the WSGI environ Zope's publisher expects from a Twisted request (reactor thread)."""

import ipaddress
import socket
import sys
from urllib.parse import unquote_to_bytes

from .. import __version__

SERVER_SOFTWARE = f"txzserver/{__version__}"
FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO",
                     "HTTP_X_FORWARDED_PORT", "HTTP_FORWARDED")


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


class ProxyTrust:
    """Which peers may set X-Forwarded-*: addresses (and networks) from ``trusted-proxy``.

    Zope's ``trusted-proxy`` also takes host names (e.g. a compose service "front"); like
    Zope's own handler they are resolved once, at startup.
    """

    #: Peers remembered, trusted or not: parsing an address costs more than the rest of the
    #: environ; a server sees few distinct peers (its proxies), so the answers are kept.
    MEMO_SIZE = 1024

    def __init__(self, entries=()):
        self.networks = tuple(net for entry in entries for net in _networks(entry))
        self._memo = {}

    def __contains__(self, host):
        if not self.networks:
            return False
        try:
            return self._memo[host]
        except KeyError:
            pass
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            trusted = False
        else:
            trusted = any(address in net for net in self.networks)
        if len(self._memo) >= self.MEMO_SIZE:
            self._memo.clear()
        self._memo[host] = trusted
        return trusted


def _networks(entry):
    """The networks of one trusted-proxy entry: an address, a network or a host name."""
    try:
        return [ipaddress.ip_network(entry, strict=False)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(entry, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ValueError(
            f"trusted-proxy {entry!r} is no address and cannot be resolved: {exc}") from exc
    return [ipaddress.ip_network(info[4][0].partition("%")[0]) for info in infos]


def header_environ(headers):
    """HTTP_* keys from Twisted ``Headers``; names containing "_" are dropped.

    A header "X_Forwarded_For" would otherwise become HTTP_X_FORWARDED_FOR just like the
    real one (header spoofing through the CGI name mangling).
    """
    environ = {}
    for name, values in headers.getAllRawHeaders():
        try:
            key = _KEYS[name]
        except KeyError:
            key = _environ_key(name)
        if key is None:
            continue
        if len(values) == 1:
            environ[key] = values[0].decode("latin-1")
        else:
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = separator.join(_latin1(v) for v in values)
    return environ


#: The environ key of each header name seen (None: not passed on), up to KEYS_KEPT names.
_KEYS = {}
KEYS_KEPT = 1024


def _environ_key(name):
    key = None
    if b"_" not in name:
        key = "HTTP_" + _latin1(name).upper().replace("-", "_")
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"):
            key = None
    if len(_KEYS) < KEYS_KEPT:
        _KEYS[name] = key
    return key


def _split_target(target):
    """``(authority, path)`` of an absolute-form target "http://host/path", which HTTP/1.1
    servers must accept (RFC 9112 3.2.2; Twisted keeps the whole URL in ``uri``), and
    ``(None, target)`` of any other."""
    if not target.startswith(b"/") and b"://" in target:
        authority_and_path = target.partition(b"://")[2]
        slash = authority_and_path.find(b"/")
        if slash < 0:
            return authority_and_path, b"/"
        return authority_and_path[:slash], authority_and_path[slash:]
    return None, target


def _split_host(value, default_port):
    host, _, port = value.rpartition(":") if not value.endswith("]") else (value, "", "")
    if not host or not port.isdigit():
        return value, default_port
    return host, port


def build_environ(request, body, body_length, *, secure, trust, errors=sys.stderr):
    """The environ for ``request`` whose complete body is the open file ``body``.

    SERVER_PORT is the port the request arrived on (Zope compares it with the WebDAV
    source port); X-Forwarded-* are honoured only from trusted proxies and removed
    otherwise; REMOTE_ADDR is the peer (Zope itself resolves X-Forwarded-For).
    """
    raw_path, _, query = request.uri.partition(b"?")
    authority, path = _split_target(raw_path)
    local = request.getHost()
    peer = request.getClientAddress()
    environ = {
        "REQUEST_METHOD": _latin1(request.method),
        "SCRIPT_NAME": "",
        "PATH_INFO": _latin1(unquote_to_bytes(path)),
        "QUERY_STRING": _latin1(query),
        "SERVER_PROTOCOL": _latin1(request.clientproto),
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "SERVER_PORT": str(getattr(local, "port", 0)),
        "REMOTE_ADDR": getattr(peer, "host", ""),
        "REMOTE_PORT": str(getattr(peer, "port", "")),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "wsgi.errors": errors,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    content_type = request.requestHeaders.getRawHeaders(b"content-type")
    if content_type:
        environ["CONTENT_TYPE"] = _latin1(content_type[0])
    if body_length or request.requestHeaders.hasHeader(b"content-length"):
        environ["CONTENT_LENGTH"] = str(body_length)
    environ.update(header_environ(request.requestHeaders))
    if authority:  # RFC 9112 3.2.2: the target's host wins over the Host header
        environ["HTTP_HOST"] = _latin1(authority.rpartition(b"@")[2])

    if environ["REMOTE_ADDR"] in trust:
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[0].strip()
        if forwarded_host:
            environ["HTTP_HOST"] = forwarded_host
    else:
        for key in FORWARDED_HEADERS:
            environ.pop(key, None)

    default_port = "443" if environ["wsgi.url_scheme"] == "https" else "80"
    host = environ.get("HTTP_HOST") or getattr(local, "host", "localhost")
    environ["SERVER_NAME"] = _split_host(host, default_port)[0]
    return environ
