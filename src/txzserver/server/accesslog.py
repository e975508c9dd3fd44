"""Access log lines in Common or Combined Log Format, written to the "access" logger.

The logger is configured by zope.conf's ``<logger access>`` section, as with ZServer. With
``log-format json`` each record also carries the request's fields (``json_fields``, read by
``txzserver.jsonlog.JsonFormatter``); the text line is the same either way.
"""

import logging
import time

access_logger = logging.getLogger("access")


def _quote(value: bytes | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def format_line(request, fmt="combined", now=None):
    """One line for a finished Twisted request (reactor thread)."""
    peer = request.getClientAddress()
    host = getattr(peer, "host", "-")
    user = getattr(request, "remote_user", None) or "-"
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
    line = '{} - {} [{}] "{} {} {}" {} {}'.format(
        host, _quote(user), stamp, _quote(request.method), _quote(request.uri),
        _quote(request.clientproto), request.code, request.sentLength or "-")
    if fmt == "combined":
        referer = request.getHeader(b"referer")
        agent = request.getHeader(b"user-agent")
        line += f' "{_quote(referer)}" "{_quote(agent)}"'
    return line


def request_protocol(request):
    """"http/1.0", "http/1.1", "h2" (HTTP/2 over TLS) or "h2c" (cleartext HTTP/2)."""
    version = request.clientproto
    if version == b"HTTP/2":
        return "h2" if request.isSecure() else "h2c"
    if isinstance(version, bytes) and version.startswith(b"HTTP/"):
        return version.decode("latin-1").lower()
    return "-"


def _text(value):
    return value.decode("latin-1") if isinstance(value, bytes) else value


def access_fields(request, duration=None, protocol=None):
    """The fields of a JSON access line for a finished request."""
    peer = request.getClientAddress()
    return {
        "client": getattr(peer, "host", None),
        "user": getattr(request, "remote_user", None),
        "method": _text(request.method),
        "path": _text(request.uri),
        "status": request.code,
        "bytes": request.sentLength or 0,
        "duration": None if duration is None else round(duration, 6),
        "protocol": protocol or request_protocol(request),
        "user_agent": _text(request.getHeader(b"user-agent")),
        "referer": _text(request.getHeader(b"referer")),
    }


def log_request(request, fmt, structured=False, duration=None, protocol=None):
    """Write the access line; with ``structured`` the record carries ``access_fields`` too."""
    if access_logger.isEnabledFor(logging.INFO):
        extra = None
        if structured:
            extra = {"json_fields": access_fields(request, duration, protocol)}
        access_logger.info(format_line(request, fmt), extra=extra)
