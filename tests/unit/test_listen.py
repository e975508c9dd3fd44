"""txzserver.listen: URL and header building, and listen() against a real local WebSocket
server (websockets' sync server on 127.0.0.1, port 0, in a thread)."""

import base64
import io
import json
import threading
import time

import pytest
from websockets.sync.server import serve

from txzserver import cli
from txzserver import listen as listen_module
from txzserver.listen import GAP_STATUS, ListenCommandError, _headers, _url, listen

WELCOME = {"type": "welcome", "instance": "i1", "user": "jane", "subscriptions": ["/Plone"]}
EVENT1 = {"type": "created", "path": "/Plone/news/a", "title": "A \u00e9"}
STATUS = {"type": "status", "action": "subscribe", "path": "/Plone", "subscriptions": ["/Plone"]}
EVENT2 = {"type": "removed", "path": "/Plone/news/b", "title": "B"}


# URL and headers

@pytest.mark.parametrize("url, path, expected", [
    ("ws://127.0.0.1:8080/ws", None, "ws://127.0.0.1:8080/ws"),
    ("ws://127.0.0.1:8080/ws", "/Plone/news", "ws://127.0.0.1:8080/ws?path=%2FPlone%2Fnews"),
    ("wss://example.org/Plone/ws?x=1", "/Plone", "wss://example.org/Plone/ws?x=1&path=%2FPlone"),
    ("ws://h/ws#frag", None, "ws://h/ws"),
])
def test_url(url, path, expected):
    assert _url(url, path) == expected


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/ws", "https://example.org/ws", "127.0.0.1/ws"])
def test_url_must_be_a_websocket_url(url):
    with pytest.raises(ListenCommandError, match="ws:// or wss://"):
        _url(url, None)


def test_headers_for_user():
    headers = _headers("jane:s3cr:et", None)
    scheme, _, value = headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(value) == b"jane:s3cr:et"


def test_headers_for_token_and_for_nobody():
    assert _headers(None, "abc.def.ghi") == {"Authorization": "Bearer abc.def.ghi"}
    assert _headers(None, None) == {}


def test_headers_user_needs_a_password():
    with pytest.raises(ListenCommandError, match="NAME:PASSWORD"):
        _headers("jane", None)


def test_headers_user_and_token_are_exclusive():
    with pytest.raises(ListenCommandError, match="not both"):
        _headers("jane:x", "token")


# listen() against a real server

class Server:
    """A websockets server in a thread; ``script(ws)`` talks to each client."""

    def __init__(self, script, process_request=None):
        self.requests = []
        self.done = threading.Event()

        def handler(ws):
            self.requests.append(ws.request)
            try:
                script(ws)
            finally:
                self.done.set()

        self.server = serve(handler, "127.0.0.1", 0, process_request=process_request)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(10)

    def url(self, path="/Plone/ws"):
        return f"ws://127.0.0.1:{self.port}{path}"


def send_all(*messages, then=None):
    def script(ws):
        for message in messages:
            ws.send(json.dumps(message))
        if then is not None:
            then(ws)
    return script


def hold_open(ws):
    """Keep the connection until the client closes it."""
    for _ in ws:
        pass


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_prints_exactly_the_events_and_stops_after_count():
    out, err = io.StringIO(), io.StringIO()
    with Server(send_all(WELCOME, EVENT1, STATUS, EVENT2, then=hold_open)) as server:
        assert listen(server.url(), path="/Plone/news", token="tok", count=2, out=out, err=err) == 0
        assert server.done.wait(10)  # the client closed the connection
    assert lines(out) == [EVENT1, EVENT2]
    assert all(", " not in line for line in out.getvalue().splitlines())  # compact JSON lines
    assert lines(err) == [WELCOME, STATUS]
    [request] = server.requests
    assert request.path == "/Plone/ws?path=%2FPlone%2Fnews"
    assert request.headers["Authorization"] == "Bearer tok"


def test_basic_credentials_are_sent():
    with Server(send_all(WELCOME, EVENT1, then=hold_open)) as server:
        listen(server.url(), user="jane:pw", count=1, out=io.StringIO(), err=io.StringIO())
    auth = server.requests[0].headers["Authorization"]
    assert base64.b64decode(auth.split()[1]) == b"jane:pw"


def test_count_stops_before_later_events():
    out = io.StringIO()
    with Server(send_all(WELCOME, EVENT1, EVENT2, EVENT1, then=hold_open)) as server:
        listen(server.url(), count=1, out=out, err=io.StringIO())
    assert lines(out) == [EVENT1]


def test_timeout_returns_with_what_arrived():
    out, err = io.StringIO(), io.StringIO()
    with Server(send_all(WELCOME, EVENT1, then=hold_open)) as server:
        started = time.monotonic()
        assert listen(server.url(), count=5, timeout=0.5, out=out, err=err) == 0
        elapsed = time.monotonic() - started
    assert lines(out) == [EVENT1]
    assert lines(err) == [WELCOME]
    assert 0.4 < elapsed < 5


def test_refused_handshake_raises_listen_error_with_the_status():
    def refuse(connection, request):
        return connection.respond(401, "authentication failed\n")

    with Server(send_all(), process_request=refuse) as server:
        with pytest.raises(ListenCommandError, match="HTTP 401") as info:
            listen(server.url(), count=1, timeout=5, out=io.StringIO(), err=io.StringIO())
    assert "authentication failed" in str(info.value)


def test_server_closing_the_connection_is_an_error():
    out = io.StringIO()
    with Server(send_all(WELCOME, EVENT1, then=lambda ws: ws.close(1001, "shutting down"))) as server:
        with pytest.raises(ListenCommandError, match="1001"):
            listen(server.url(), out=out, err=io.StringIO())
    assert lines(out) == [EVENT1]  # what came before the close was printed


def test_nobody_listening_raises_listen_error():
    with Server(send_all()) as server:
        url = server.url()
    with pytest.raises(ListenCommandError):
        listen(url, count=1, timeout=5, out=io.StringIO(), err=io.StringIO())


def test_http_url_is_refused_before_connecting():
    with pytest.raises(ListenCommandError, match="ws://"):
        listen("http://127.0.0.1:1/ws", out=io.StringIO(), err=io.StringIO())


# Gaps (events lost on the bus, announced to the listener): fake connections, no sockets

GAP = {"type": "gap", "instance": "alpha", "missed": 2}


class FakeConnection:
    """What listen() uses of websockets' sync client: a context manager with recv(timeout)."""

    def __init__(self, *messages):
        self.queue = [json.dumps(m) for m in messages]
        self.closed = False
        self.opened_with = None

    def __call__(self, url, **options):
        self.opened_with = (url, options)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True

    def recv(self, timeout=None):
        if not self.queue:
            raise TimeoutError()
        return self.queue.pop(0)


def test_gap_is_printed_as_a_json_line_and_not_counted_as_an_event():
    out, err = io.StringIO(), io.StringIO()
    ws = FakeConnection(WELCOME, EVENT1, GAP, EVENT2, EVENT1)
    assert listen("ws://h/Plone/ws", count=2, out=out, err=err, connect=ws) == 0
    assert lines(out) == [EVENT1, GAP, EVENT2]
    assert lines(err) == [WELCOME]
    assert ws.closed


def test_fail_on_gap_stops_at_the_first_gap_with_the_gap_status():
    out, err = io.StringIO(), io.StringIO()
    ws = FakeConnection(WELCOME, EVENT1, GAP, EVENT2)
    assert listen("ws://h/Plone/ws", fail_on_gap=True, out=out, err=err, connect=ws) == GAP_STATUS
    assert lines(out) == [EVENT1, GAP]  # the gap is printed before exiting; nothing after it
    assert ws.closed
    assert ws.queue == [json.dumps(EVENT2)]


def test_fail_on_gap_without_a_gap_ends_normally():
    out = io.StringIO()
    ws = FakeConnection(WELCOME, EVENT1, EVENT2)
    assert listen("ws://h/Plone/ws", fail_on_gap=True, out=out, err=io.StringIO(), connect=ws) == 0
    assert lines(out) == [EVENT1, EVENT2]


def test_gap_status_is_distinct_from_success_and_errors():
    assert GAP_STATUS not in (0, 1, 2)  # 2: ListenCommandError, 1: Python's own failures


def test_cli_fail_on_gap_flag_and_exit_status(monkeypatch, capsys):
    calls = []

    def fake_listen(url, **options):
        calls.append((url, options))
        return GAP_STATUS

    monkeypatch.setattr(listen_module, "listen", fake_listen)
    assert cli.main(["listen", "ws://h/Plone/ws", "--fail-on-gap"]) == GAP_STATUS
    assert calls[0][1]["fail_on_gap"] is True
    cli.main(["listen", "ws://h/Plone/ws"])
    assert calls[1][1]["fail_on_gap"] is False


def test_cli_help_names_the_gap_status(capsys):
    with pytest.raises(SystemExit):
        cli.main(["listen", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--fail-on-gap" in help_text
    assert f"exit with status {GAP_STATUS} at the first gap" in help_text


# listen --durable: the pure parts (txzserver.bus.natslisten); the command against a real
# nats-server is tests/integration/test_listen_durable.py

def test_durable_since_a_sequence_or_a_time():
    import datetime

    from txzserver.bus.natslisten import parse_since
    assert parse_since(None) == (None, None)
    assert parse_since("42") == (42, None)
    utc = datetime.timezone.utc
    assert parse_since("2024-05-01T12:00:00Z") == (None, datetime.datetime(2024, 5, 1, 12, tzinfo=utc))
    assert parse_since("2024-05-01T12:00:00") == (None, datetime.datetime(2024, 5, 1, 12, tzinfo=utc))
    assert parse_since("2024-05-01T14:00:00+02:00")[1] == datetime.datetime(2024, 5, 1, 12, tzinfo=utc)


@pytest.mark.parametrize("value", ["0", "-3", "yesterday", "2024-13-01", ""])
def test_durable_bad_since(value):
    from txzserver.bus.natslisten import DurableListenError, parse_since
    with pytest.raises(DurableListenError):
        parse_since(value)


def test_durable_path_filter_on_whole_segments():
    from txzserver.bus.natslisten import in_path
    assert in_path(None, "/Plone/a") and in_path("/Plone", "/Plone/a")
    assert in_path("/Plone/news/", "/Plone/news") and not in_path("/Plone/news", "/Plone/newsroom")


def test_durable_line_shows_what_anonymous_sees_unless_everything():
    from txzserver.bus import Event, PrincipalChange
    from txzserver.bus.natslisten import line_of
    public = Event("created", "/Plone/a", guard={"Anonymous"}, actor="jane",
                   actor_guard={"Authenticated"}).stamped("i", "e", 3)
    line = json.loads(line_of(public, 17, everything=False))
    assert line["seq"] == 17 and line["actor"] == "" and line["path"] == "/Plone/a"
    assert not {"guard", "actor_guard", "instance", "epoch"} & set(line)
    assert json.loads(line_of(public, 17, everything=True))["actor"] == "jane"
    private = Event("created", "/Plone/b", guard={"Manager"})
    assert line_of(private, 18, everything=False) is None
    assert json.loads(line_of(private, 18, everything=True))["path"] == "/Plone/b"
    assert line_of(PrincipalChange(users={"u": ["r"]}), 19, everything=True) is None


def test_durable_needs_a_nats_bus():
    from txzserver.config.datatypes import EventBusSettings
    from txzserver.listen import listen_durable
    with pytest.raises(ListenCommandError, match="--durable needs an <event-bus> with backend nats"):
        listen_durable(None, "builder")
    with pytest.raises(ListenCommandError, match="backend nats"):
        listen_durable(EventBusSettings("ipc:///a", "ipc:///b"), "builder")


def test_cli_listen_without_url_or_durable_is_an_error(capsys):
    assert cli.main(["listen"]) == 2
    assert "give a WebSocket URL (or --durable NAME" in capsys.readouterr().err
