"""txzserver.websocket.service: which requests are handshakes, for which site, from which
origins, with which first subscription, and the limits (over StringTransports)."""

import gc
import json

import pytest

from txzserver.bus import Event
from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket.service import NotificationService

from .wsframes import Endpoint, ZopeApp


@pytest.fixture
def endpoint(monkeypatch):
    return Endpoint(monkeypatch)


def service(**settings):
    return NotificationService(None, None, WebSocketSettings(**settings), "inst-1")


# Which requests are ours

@pytest.mark.parametrize("path, site", [
    ("/ws", "Plone"),
    ("/Plone/ws", "Plone"),
    ("/intranet/ws", "intranet"),
    ("/a/b/ws", None),
    ("/wsx", None),
    ("/Plone/wsx", None),
    ("/Plonews", None),
    ("//ws", None),
    ("/", None),
    ("/Plone", None),
])
def test_site_for(path, site):
    assert service().site_for(path) == site


def test_site_for_with_a_configured_path_and_default_site():
    svc = service(path="/live/events", site="intranet")
    assert svc.site_for("/live/events") == "intranet"
    assert svc.site_for("/Plone/live/events") == "Plone"
    assert svc.site_for("/ws") is None


def test_slash_ws_uses_the_configured_default_site(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(site="intranet"),
                        app=ZopeApp(principal={"userid": "jane", "tokens": ["Member"]}))
    client = endpoint.connect(b"/ws")
    assert client.status == 101
    assert endpoint.app.environs[0]["PATH_INFO"] == "/intranet/@@txzserver-principal"
    [welcome] = client.messages()
    assert welcome["subscriptions"] == ["/intranet"]  # no site_path in the answer: /SITE


def test_site_slash_ws_picks_that_site(endpoint):
    client = endpoint.connect(b"/Plone/ws")
    assert client.status == 101
    assert endpoint.app.environs[0]["PATH_INFO"] == "/Plone/@@txzserver-principal"


def test_deeper_path_goes_to_zope(endpoint):
    client = endpoint.connect(b"/a/b/ws")
    assert client.status == 200
    assert client.body.endswith(b"zope /a/b/ws")
    assert [e["PATH_INFO"] for e in endpoint.app.environs] == ["/a/b/ws"]
    assert len(endpoint.hub) == 0


def test_other_paths_go_to_zope(endpoint):
    client = endpoint.connect(b"/Plone/front-page", upgrade=False)
    assert client.status == 200
    assert client.body.endswith(b"zope /Plone/front-page")


@pytest.mark.parametrize("path", [b"/ws", b"/Plone/ws"])
def test_plain_get_of_the_endpoint_is_426(endpoint, path):
    client = endpoint.connect(path, upgrade=False)
    assert client.status == 426
    assert client.headers[b"upgrade"] == b"websocket"
    assert b"WebSocket endpoint" in client.body
    assert endpoint.app.environs == []  # Zope was not asked
    assert not client.transport.disconnecting  # an ordinary HTTP answer; keep-alive stays


def test_post_with_upgrade_headers_is_426(endpoint):
    client = endpoint.connect(b"/ws", method=b"POST", headers=[b"Content-Length: 0"])
    assert client.status == 426
    assert endpoint.app.environs == []


# First subscription

def test_path_parameter_is_the_first_subscription(endpoint):
    client = endpoint.connect(b"/ws?path=/Plone/news/")
    [welcome] = client.messages()
    assert welcome["subscriptions"] == ["/Plone/news"]
    endpoint.hub.deliver(Event("modified", "/Plone/news/a", guard={"Member"}))
    endpoint.hub.deliver(Event("modified", "/Plone/events/b", guard={"Member"}))
    endpoint.hub.deliver(Event("modified", "/Plone/newsletter", guard={"Member"}))
    assert [m["path"] for m in client.messages()] == ["/Plone/news/a"]


def test_path_parameter_is_url_decoded(endpoint):
    client = endpoint.connect(b"/ws?path=%2FPlone%2Fnews&other=1")
    assert client.messages()[0]["subscriptions"] == ["/Plone/news"]


@pytest.mark.parametrize("query", [b"path=relative", b"path=/Plone/../x", b"path=Plone/news"])
def test_bad_path_parameter_is_400(endpoint, query):
    client = endpoint.connect(b"/ws?" + query)
    assert client.status == 400
    assert b"bad path parameter" in client.body
    assert endpoint.app.environs == []
    assert len(endpoint.hub) == 0


def test_empty_path_parameter_means_the_site(endpoint):
    client = endpoint.connect(b"/ws?path=")
    assert client.messages()[0]["subscriptions"] == ["/Plone"]


# Origins

def test_no_origin_is_accepted(endpoint):
    assert endpoint.connect(b"/ws").status == 101


@pytest.mark.parametrize("origin", [b"http://example.org", b"HTTP://Example.ORG/"])
def test_origin_of_the_site_itself_is_accepted(endpoint, origin):
    client = endpoint.connect(b"/ws", origin=origin)
    assert client.status == 101
    assert client.messages()[0]["type"] == "welcome"


def test_own_origin_includes_the_port(endpoint):
    assert endpoint.connect(b"/ws", host=b"example.org:8080",
                            origin=b"http://example.org:8080").status == 101
    assert endpoint.connect(b"/ws", host=b"example.org:8080",
                            origin=b"http://example.org").status == 403


def test_https_origin_needs_a_secure_listener(monkeypatch):
    plain = Endpoint(monkeypatch)
    assert plain.connect(b"/ws", origin=b"https://example.org").status == 403
    secure = Endpoint(monkeypatch, secure=True)
    assert secure.connect(b"/ws", origin=b"https://example.org").status == 101
    assert secure.connect(b"/ws", origin=b"http://example.org").status == 403


def test_allowed_origin_is_accepted(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(
        allowed_origins=("https://www.example.com",)))
    assert endpoint.connect(b"/ws", origin=b"https://www.example.com").status == 101
    assert endpoint.connect(b"/ws", origin=b"https://evil.example.com").status == 403


@pytest.mark.parametrize("origin", [b"https://evil.example", b"http://example.org.evil.example",
                                    b"http://evil.example/http://example.org"])
def test_foreign_origin_is_403_without_welcome(endpoint, origin):
    client = endpoint.connect(b"/ws", origin=origin)
    assert client.status == 403
    assert b"is not allowed" in client.status_line
    assert b"sec-websocket-accept" not in client.headers
    assert client.frames() == []
    assert endpoint.app.environs == []  # refused before asking Zope
    assert len(endpoint.hub) == 0
    assert client.transport.disconnecting
    client.lose()
    assert endpoint.open_connections == 0


def test_null_origin_is_refused(endpoint):
    """Sandboxed frames and file:// pages send "null"; Autobahn rejects it as invalid."""
    client = endpoint.connect(b"/ws", origin=b"null")
    assert client.status in (400, 403)
    assert client.frames() == []
    assert endpoint.app.environs == []


# Limits

def test_max_connections_reached_is_503(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(max_connections=2))
    first, second = endpoint.connect(b"/ws"), endpoint.connect(b"/ws")
    assert (first.status, second.status) == (101, 101)
    third = endpoint.connect(b"/ws")
    assert third.status == 503
    assert b"max-connections" in third.status_line
    assert len(endpoint.hub) == 2
    third.lose()
    first.lose()
    assert endpoint.connect(b"/ws").status == 101  # a slot came free


def test_principal_401_refuses_the_handshake(monkeypatch):
    endpoint = Endpoint(monkeypatch, app=ZopeApp(status="401 Unauthorized"))
    client = endpoint.connect(b"/ws", headers=[b"Authorization: Bearer expired"])
    assert client.status == 401
    assert client.frames() == []
    assert len(endpoint.hub) == 0


def test_handshake_is_not_a_request_in_flight(endpoint):
    """Graceful shutdown waits for requests in flight; a WebSocket is not one."""
    client = endpoint.connect(b"/ws")
    assert client.status == 101
    assert endpoint.resource.tracker.count == 0


def test_welcomes_of_the_same_user_and_path_are_one_payload(endpoint):
    svc = endpoint.service
    assert svc.welcome("jane", ["/Plone"], "/Plone") is svc.welcome("jane", ["/Plone"], "/Plone")
    assert svc.welcome("jane", ["/Plone"], "/Plone") is not svc.welcome(None, ["/Plone"], "/Plone")
    assert json.loads(svc.welcome(None, ["/Plone/news"], "/Plone")) == {
        "type": "welcome", "instance": "inst-1", "user": None, "site": "/Plone",
        "subscriptions": ["/Plone/news"]}


# The collector during a storm of handshakes

class Collector:
    def __init__(self):
        self.threshold = (700, 10, 10)

    def get_threshold(self):
        return self.threshold

    def set_threshold(self, *threshold):
        self.threshold = threshold


def pacing(burst=3, longest=30.0):
    from twisted.internet.task import Clock

    from txzserver.websocket.service import CollectorPacing
    clock, collector = Clock(), Collector()
    paced = CollectorPacing(clock, burst=burst, window=1.0, longest=longest, collector=collector)
    return paced, clock, collector


def test_full_collections_are_held_during_a_burst_and_restored_after():
    paced, clock, collector = pacing()
    paced.handshake()
    paced.handshake()
    assert collector.threshold == (700, 10, 10) and not paced.holding
    paced.handshake()
    assert collector.threshold == (700, 10, paced.HELD) and paced.holding
    for _ in range(3):  # still a burst in the next window: held
        paced.handshake()
    clock.advance(1.0)
    assert paced.holding
    clock.advance(1.0)  # a quiet window
    assert collector.threshold == (700, 10, 10) and not paced.holding
    assert not clock.getDelayedCalls()


def test_handshakes_spread_out_do_not_hold_the_collector():
    paced, clock, collector = pacing()
    for _ in range(10):
        paced.handshake()
        clock.advance(0.6)
    assert collector.threshold == (700, 10, 10) and not clock.getDelayedCalls()


def test_a_storm_holds_the_collector_for_longest_at_most_then_not_as_long():
    paced, clock, collector = pacing(longest=3.0)
    for second in range(8):
        for _ in range(6):  # a burst each second
            paced.handshake()
        held = paced.holding
        clock.advance(1.0)
        assert held == (second < 3 or second >= 6), second
    assert collector.threshold[2] == paced.HELD  # held again from second 6


def test_release_restores_at_once():
    paced, clock, collector = pacing()
    for _ in range(3):
        paced.handshake()
    paced.release()
    assert collector.threshold == (700, 10, 10)
    clock.advance(1.0)  # the pending check finds nothing to do
    assert collector.threshold == (700, 10, 10)


def test_close_all_releases_the_collector(endpoint):
    endpoint.service.pacing.saved = (700, 10, 10)
    before = gc.get_threshold()
    try:
        endpoint.service.close_all()
        assert gc.get_threshold() == (700, 10, 10) and not endpoint.service.pacing.holding
    finally:
        gc.set_threshold(*before)
