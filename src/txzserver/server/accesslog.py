"""Access log lines in Common or Combined Log Format, written to the "access" logger.

The logger is configured by zope.conf's ``<logger access>`` section, as with ZServer.
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


def log_request(request, fmt):
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info(format_line(request, fmt))
