"""Sites kept apart, links kept safe: a connection subscribes only inside the site it
authenticated against, a principal change applies in its own site only, and an event whose
url is not http(s) is never built, sent or delivered.

The WebSocket parts run over StringTransports on a MemoryReactorClock (wsframes.Endpoint);
the bus part on a real ZeroMQ broker over ipc (as test_bus_publishers).
"""

import json

import pytest

from txzserver.bus import Event, PrincipalChange, UnsafeURL
from txzserver.bus.message import from_wire
from txzserver.listen import event_url
from txzserver.websocket.fanout import Hub, Subscriber
from txzserver.websocket.principals import PrincipalCache
from txzserver.websocket.auth import Principal

from .test_bus_publishers import broker, instances, joined, texts  # noqa: F401
from .wsframes import Endpoint, ZopeApp
from .zmqbroker import wait_for


@pytest.fixture
def endpoint(monkeypatch):
    return Endpoint(monkeypatch)


def opened(endpoint, path=b"/ws"):
    client = endpoint.connect(path)
    assert client.status == 101, client.status_line
    [welcome] = client.messages()
    return client, welcome


# Subscriptions stay in the connection's site

def test_subscribe_outside_the_site_is_refused_and_changes_nothing(endpoint):
    client, welcome = opened(endpoint)
    assert welcome["site"] == "/Plone" and welcome["subscriptions"] == ["/Plone"]
    for outside in ("/Plone2", "/Plone2/news", "/", "/Other/Plone"):
        client.send_json({"action": "subscribe", "path": outside})
        assert client.messages() == [{"type": "error", "message": (
            f"path {outside} is outside this connection's site /Plone: open a connection to that"
            " site's endpoint")}]
    assert endpoint.hub.subscribers.pop().paths == {"/Plone"}


def test_subscribe_inside_the_site_is_answered_with_a_status(endpoint):
    client, _ = opened(endpoint)
    client.send_json({"action": "subscribe", "path": "/Plone/news"})
    assert client.messages() == [{"type": "status", "action": "subscribe", "path": "/Plone/news",
                                  "subscriptions": ["/Plone", "/Plone/news"]}]


def test_an_event_of_another_site_never_reaches_the_connection(monkeypatch):
    """The report's case: a Reviewer of /Plone asking for /Plone2 gets none of its reviews."""
    principal = {"userid": "rev", "tokens": ["Reviewer", "user:rev"], "site_path": "/Plone"}
    endpoint = Endpoint(monkeypatch, app=ZopeApp(principal=principal))
    client, _ = opened(endpoint)
    client.send_json({"action": "subscribe", "path": "/Plone2"})
    assert client.messages()[0]["type"] == "error"
    assert endpoint.hub.deliver(Event("transition", "/Plone2/doc", title="Secret", guard={"Reviewer"})) == 0
    assert client.frames() == []
    assert endpoint.hub.deliver(Event("transition", "/Plone/doc", title="Ours", guard={"Reviewer"})) == 1


def test_handshake_path_outside_the_urls_site_is_refused_before_zope_is_asked(endpoint):
    client = endpoint.connect(b"/Plone/ws?path=/Plone2/news")
    assert client.status == 403
    assert client.body == (b"path /Plone2/news is outside this endpoint's site /Plone: connect to"
                           b" that site's endpoint\n")
    assert endpoint.app.environs == [] and len(endpoint.hub) == 0


def test_handshake_path_outside_the_site_zope_names_is_refused_with_403(monkeypatch):
    """The site Zope answered for decides, should it differ from the one the URL names
    (/ws: the default site, Plone)."""
    principal = {"userid": "jane", "tokens": ["Member"], "site_path": "/sites/Plone"}
    endpoint = Endpoint(monkeypatch, app=ZopeApp(principal=principal))
    client = endpoint.connect(b"/ws?path=/Plone/news")
    assert client.status == 403
    # Autobahn puts a refusal's reason in the status line (as for a refused Origin)
    assert client.status_line == (b"HTTP/1.1 403 path /Plone/news is outside this connection's"
                                  b" site /sites/Plone")
    assert len(endpoint.hub) == 0 and len(endpoint.app.environs) == 1
    again = endpoint.connect(b"/ws?path=/Plone/news")  # the principal from the cache this time
    assert again.status_line == client.status_line and len(endpoint.app.environs) == 1


# Principal changes apply per site

def two_sites_hub():
    hub, sent, closed = Hub(), {}, []
    for site in ("/A", "/B"):
        sent[site] = []
        hub.add(Subscriber({"Member", "user:jane"}, [site], sent[site].append, userid="jane",
                           close=lambda code, reason, site=site: closed.append((site, code)),
                           site=site))
    return hub, sent, closed


def tokens_by_site(hub):
    return {s.site: s.tokens for s in hub.subscribers}


def test_a_principal_change_updates_the_tokens_of_its_own_site_only():
    hub, sent, _ = two_sites_hub()
    hub.deliver(PrincipalChange(users={"jane": ["Manager", "user:jane"]}, site="/A"))
    assert tokens_by_site(hub) == {"/A": {"Manager", "user:jane"}, "/B": {"Member", "user:jane"}}
    assert hub.deliver(Event("modified", "/B/doc", guard={"Manager"})) == 0


def test_a_removal_closes_the_connections_of_its_own_site_only():
    hub, _, closed = two_sites_hub()
    hub.deliver(PrincipalChange(removed=("jane",), site="/B"))
    assert closed == [("/B", 4001)] and tokens_by_site(hub).keys() == {"/A"}


def test_a_change_naming_no_site_applies_no_tokens_and_removes_everywhere():
    hub, _, closed = two_sites_hub()
    hub.deliver(PrincipalChange(users={"jane": ["Manager"]}))
    assert tokens_by_site(hub) == {"/A": {"Member", "user:jane"}, "/B": {"Member", "user:jane"}}
    hub.deliver(PrincipalChange(removed=("jane",)))
    assert sorted(closed) == [("/A", 4001), ("/B", 4001)]


def test_cached_lookups_are_dropped_in_the_changed_site_only():
    cache = PrincipalCache()
    for site in ("/A", "/B"):
        cache.put(site, Principal("jane", frozenset({"Member"}), site))
    assert cache.drop_users({"jane"}, site="/A") == 1
    assert cache.get("/A") is None and cache.get("/B") is not None
    assert cache.drop_users({"jane"}) == 1  # None: every site


def test_the_site_travels_on_the_wire():
    change = PrincipalChange(users={"jane": ["Member"]}, site="/A").stamped("alpha", "e1", 3)
    assert from_wire(change.to_wire()) == change and from_wire(change.to_wire()).site == "/A"
    with pytest.raises(ValueError):
        PrincipalChange(site="A")


# Only http(s) urls

UNSAFE = ["javascript:alert(document.cookie)", " javascript:alert(1)", "JaVaScRiPt:alert(1)",
          "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:x",
          "//evil.example/x", "http:/no-host", "/Plone/relative"]


@pytest.mark.parametrize("url", UNSAFE)
def test_an_event_with_a_url_that_is_not_http_is_not_built(url):
    with pytest.raises(UnsafeURL):
        Event("created", "/Plone/a", url=url)
    wire = b'{"type":"created","path":"/Plone/a","url":%s,"guard":["Anonymous"]}' % (
        json.dumps(url).encode())
    with pytest.raises(UnsafeURL):
        from_wire(wire)


@pytest.mark.parametrize("url", ["", "http://localhost:8080/Plone/a", "HTTPS://example.org/a?b=c"])
def test_http_urls_and_no_url_are_events(url):
    assert Event("created", "/Plone/a", url=url).url == url


def test_an_unsafe_url_from_the_bus_is_dropped_counted_and_logged_once(instances, logged):  # noqa: F811
    a, b = instances
    sent = []
    b.hub.add(Subscriber({"Anonymous"}, ["/"], sent.append))
    joined(a, instances)
    injected = (b'{"type":"notification","path":"/Plone/x","url":"javascript:alert(1)",'
                b'"guard":["Anonymous"],"title":"Click me"}')
    a.bus.pub.send(injected)
    a.bus.pub.send(injected)
    a.bus.publish([Event("created", "/Plone/ok", url="http://localhost/Plone/ok", guard={"Anonymous"})])
    wait_for(lambda: "/Plone/ok" in b.paths(), b.pump, what="the good event")
    assert b.bus.unsafe == 2 and b.paths() == ["/Plone/ok"]
    assert len(sent) == 1 and b"javascript" not in sent[0]
    warnings = [t for t in texts(logged) if "unsafe url" in t]
    assert len(warnings) == 1  # at most once a minute: an injecting peer cannot flood the log


# txzserver listen: links on the listened-to server

@pytest.mark.parametrize("ws_url, path, expected", [
    ("ws://127.0.0.1:8080/Plone/ws", "/Plone/news/a b", "http://127.0.0.1:8080/Plone/news/a%20b"),
    ("wss://example.org/ws", "/Plone/x", "https://example.org/Plone/x"),
    ("ws://h/ws", "//evil.example/x", ""),
    ("ws://h/ws", "javascript:alert(1)", ""),
])
def test_listen_builds_the_url_from_the_path_on_the_servers_origin(ws_url, path, expected):
    assert event_url(ws_url, path) == expected


def test_listen_prints_the_url_built_from_the_path_not_the_one_received():
    import io

    from txzserver.listen import listen

    from .test_listen import Server, hold_open, lines, send_all

    sent = {"type": "created", "path": "/Plone/news/a", "title": "A",
            "url": "javascript:alert(1)"}
    out, err = io.StringIO(), io.StringIO()
    with Server(send_all({"type": "welcome", "site": "/Plone", "subscriptions": ["/Plone"]}, sent,
                         then=hold_open)) as server:
        assert listen(server.url(), count=1, out=out, err=err) == 0
    assert lines(out) == [dict(sent, url=f"http://127.0.0.1:{server.port}/Plone/news/a")]
