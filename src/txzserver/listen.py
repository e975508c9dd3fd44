"""`txzserver listen URL`: print each event a user receives as one JSON line on stdout.

For scripts and static-site builders. Welcome, status and error messages go to stderr.
With ``--durable NAME`` (the nats bus) it reads the bus's stream instead, where a builder that
was stopped finds every event it missed (``listen_durable``).
A ``gap`` message (the server lost some events on the bus) is printed on stdout too; with
``fail_on_gap`` the command stops there with GAP_STATUS, so a builder knows to rebuild in full.

An event's ``url`` is printed as the listened-to server's origin (http for ws://, https for
wss://) plus the event's path (``event_url``), not as received: a script that follows it
reaches the server it chose, never another host or a ``javascript:`` url.
"""

import base64
import json
import sys
import time
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .bus.message import EVENT_TYPES

#: Exit status of ``txzserver listen --fail-on-gap`` at the first gap (2 is for errors).
GAP_STATUS = 3
PRINTED_TYPES = frozenset(EVENT_TYPES) | {"gap"}


class ListenCommandError(Exception):
    pass


def _url(url, path):
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ListenCommandError(f"URL must start with ws:// or wss://, not {url!r}")
    query = parts.query
    if path:
        query = (query + "&" if query else "") + urlencode({"path": path})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def event_url(ws_url, path):
    """The http(s) URL of ``path`` on the server of ``ws_url``; "" for a path that is not absolute."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        return ""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, quote(path, safe="/@+=:,;~!$&'()*"), "", ""))


def _headers(user, token):
    if user and token:
        raise ListenCommandError("give --user or --token, not both")
    if user:
        if ":" not in user:
            raise ListenCommandError("--user needs NAME:PASSWORD")
        return {"Authorization": "Basic " + base64.b64encode(user.encode()).decode()}
    if token:
        return {"Authorization": f"Bearer {token}"}
    return {}


def listen_durable(bus, name, **options):
    """`txzserver listen --durable NAME`: the nats bus's stream through a durable consumer
    (txzserver.bus.natslisten); ``bus``: the EventBusSettings (backend nats). Same output,
    options and GAP_STATUS as ``listen``; ListenCommandError for what stops it at once."""
    from .bus.natslisten import DurableListenError
    from .bus.natslisten import listen_durable as read

    if bus is None or bus.backend != "nats":
        raise ListenCommandError("--durable needs an <event-bus> with backend nats"
                                 " (--config ZOPE_CONF, or --nats-server URL)")
    try:
        return read(bus, name, GAP_STATUS, **options)
    except DurableListenError as exc:
        raise ListenCommandError(str(exc)) from exc


def listen(url, path=None, user=None, token=None, count=0, timeout=0, fail_on_gap=False,
           out=sys.stdout, err=sys.stderr, connect=None):
    """Connect and print events (and gaps) until ``count`` events or ``timeout`` seconds;
    return 0, or GAP_STATUS at the first gap when ``fail_on_gap``. ``connect`` is
    websockets' sync client (tests pass a fake one)."""
    # websockets is imported here, not at the top: cli.py imports this module for every
    # command (GAP_STATUS in --help), and `txzserver serve` does not need websockets.
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect as ws_connect

    connect = connect or ws_connect
    deadline = time.monotonic() + timeout if timeout else None
    received = 0
    try:
        with connect(_url(url, path), additional_headers=_headers(user, token),
                     max_size=2**22, open_timeout=10) as ws:
            while not count or received < count:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    text = ws.recv(timeout=remaining)
                except TimeoutError:
                    break
                message = json.loads(text)
                kind = message.get("type")
                if kind in EVENT_TYPES and "url" in message:
                    message["url"] = event_url(url, message.get("path"))
                if kind in PRINTED_TYPES:
                    out.write(json.dumps(message, separators=(",", ":")) + "\n")
                    out.flush()
                    if kind == "gap" and fail_on_gap:
                        return GAP_STATUS
                    received += kind in EVENT_TYPES  # --count counts events, not gaps
                else:
                    err.write(json.dumps(message) + "\n")
    except InvalidStatus as exc:
        raise ListenCommandError(f"handshake refused: HTTP {exc.response.status_code}"
                          f" {exc.response.body.decode('utf-8', 'replace').strip()}") from exc
    except (OSError, WebSocketException) as exc:
        raise ListenCommandError(str(exc) or exc.__class__.__name__) from exc
    return 0
