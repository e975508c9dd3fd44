"""Access log lines in Common or Combined Log Format, written to the "access" logger.

The logger is configured by zope.conf's ``<logger access>`` section, as with ZServer. With
``log-format json`` each record also carries the request's fields (``json_fields``, read by
``txzserver.jsonlog.JsonFormatter``); the text line is the same either way.
"""

import logging
import time

access_logger = logging.getLogger("access")

#: Seconds an access line may wait to be written with others (see ``AccessLog``).
FLUSH_INTERVAL = 0.1
#: Lines kept at most before they are written at once.
MAX_PENDING = 256

_stamp_cache = (None, "")


def _stamp(now):
    """The CLF time of ``now`` (seconds), formatted once per second."""
    global _stamp_cache
    second = int(now)
    if _stamp_cache[0] != second:
        _stamp_cache = (second, time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second)))
    return _stamp_cache[1]


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
    stamp = _stamp(time.time() if now is None else now)
    line = '{} - {} [{}] "{} {} {}" {} {}'.format(
        host, _quote(user), stamp, _quote(request.method), _quote(request.uri),
        _quote(request.clientproto), request.code, request.sentLength or "-")
    if fmt == "combined":
        referer = request.getHeader(b"referer")
        agent = request.getHeader(b"user-agent")
        line += f' "{_quote(referer)}" "{_quote(agent)}"'
    return line


def request_protocol(request):
    """"http/1.0", "http/1.1", "h2" (HTTP/2 over TLS), "h2c" (cleartext HTTP/2) or "h3"."""
    version = request.clientproto
    if version == b"HTTP/3":
        return "h3"
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


class AccessLog:
    """The access lines of one listener, written in batches (reactor thread).

    Writing and flushing each line when its response finished cost a write system call per
    request in the reactor thread; with publisher threads running Zope, each one handed them
    the GIL and the reactor waited to get it back before it could read or answer anything
    else. A finished request is noted here (with its time); the lines are formatted and
    written together at most ``interval`` seconds later, when ``MAX_PENDING`` are waiting,
    and when the reactor shuts down, with one flush of each handler per batch.
    """

    def __init__(self, reactor, fmt="combined", structured=False, interval=FLUSH_INTERVAL):
        self.reactor = reactor
        self.fmt = fmt
        self.structured = structured
        self.interval = interval
        self._pending = []
        self._timer = None
        reactor.addSystemEventTrigger("after", "shutdown", self.flush)

    def add(self, request, duration=None, protocol=None):
        """Note the finished ``request``; its line is written by the next ``flush``."""
        if not access_logger.isEnabledFor(logging.INFO):
            return
        self._pending.append((request, time.time(), duration, protocol))
        if len(self._pending) >= MAX_PENDING:
            self.flush()
        elif self._timer is None:
            self._timer = self.reactor.callLater(self.interval, self.flush)

    def flush(self):
        """Write every pending line now."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        handlers = _stream_handlers(access_logger)
        for handler in handlers:
            handler.flush = _no_flush  # emit() flushes after every line; once per batch here
        try:
            for request, now, duration, protocol in pending:
                extra = None
                if self.structured:
                    extra = {"json_fields": access_fields(request, duration, protocol)}
                # made here rather than by info(): it would look up the caller's frame
                record = access_logger.makeRecord(
                    access_logger.name, logging.INFO, __file__, 0,
                    format_line(request, self.fmt, now), None, None, extra=extra)
                record.created, record.msecs = now, (now - int(now)) * 1000  # not the flush's
                access_logger.handle(record)
        finally:
            for handler in handlers:
                del handler.flush
                handler.flush()


def _no_flush():
    pass


def _stream_handlers(logger):
    """The StreamHandlers (files included) a record of ``logger`` reaches."""
    found = {}
    while logger is not None:
        found.update((id(h), h) for h in logger.handlers if isinstance(h, logging.StreamHandler))
        logger = logger.parent if logger.propagate else None
    return list(found.values())
