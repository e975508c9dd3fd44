"""txzserver.websocket.principals and the hub's PrincipalChange: the principal cache (keys, TTL,
size, invalidation), single-flight lookups in batches on the pool, live connections updated
or closed when a user changes, and a page request never queued behind a storm of lookups."""

import pytest
from twisted.internet.defer import Deferred

from tests.support.threadpools import ManualThreadPool, SynchronousThreadPool
from txzserver.bus import Event, PrincipalChange
from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket import principals as principals_module
from txzserver.websocket.auth import AuthenticationFailed, Principal
from txzserver.websocket.fanout import Hub, Subscriber
from txzserver.websocket.principals import (
    Gone, PrincipalCache, PrincipalLookups, credentials_key,
)

from .helpers import ThreadsReactor
from .wsframes import Endpoint, ZopeApp


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def principal(userid="jane", tokens=("Member", "user:jane")):
    return Principal(userid=userid, tokens=frozenset(tokens), site_path="/Plone")


# Keys

def test_key_depends_on_site_credentials_and_address_only():
    base = {"HTTP_AUTHORIZATION": "Basic x", "HTTP_COOKIE": "__ac=1", "HTTP_USER_AGENT": "a",
            "REMOTE_ADDR": "10.0.0.1"}
    key = credentials_key(base, "Plone")
    assert credentials_key(dict(base, HTTP_USER_AGENT="b"), "Plone") == key
    assert credentials_key(base, "intranet") != key
    assert credentials_key(dict(base, HTTP_COOKIE="__ac=2"), "Plone") != key
    assert credentials_key(dict(base, HTTP_AUTHORIZATION="Basic y"), "Plone") != key
    assert credentials_key({}, "Plone") == credentials_key({"HTTP_USER_AGENT": "z"}, "Plone")
    assert b"__ac" not in key and len(key) == 32  # a digest, not the credentials


# The cache

def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = PrincipalCache(ttl=60, clock=clock)
    cache.put(b"k", principal())
    clock.now = 59.9
    assert cache.get(b"k") == principal()
    clock.now = 60.1
    assert cache.get(b"k") is None and len(cache) == 0


def test_the_least_recently_used_entry_goes_first():
    cache = PrincipalCache(ttl=60, size=2, clock=Clock())
    cache.put(b"a", principal("a"))
    cache.put(b"b", principal("b"))
    cache.get(b"a")
    cache.put(b"c", principal("c"))
    assert [cache.get(k) is not None for k in (b"a", b"b", b"c")] == [True, False, True]


def test_drop_users_and_group_tokens():
    cache = PrincipalCache(clock=Clock())
    cache.put(b"jane", principal("jane", ("Member", "user:jane", "user:editors")))
    cache.put(b"joe", principal("joe", ("Member", "user:joe")))
    cache.put(b"anon", principal(None, ("Anonymous",)))
    assert cache.drop_users({"joe"}) == 1
    assert cache.drop_users(set(), {"user:editors"}) == 1
    assert list(cache.entries) == [b"anon"]


def test_ttl_zero_caches_nothing():
    cache = PrincipalCache(ttl=0)
    cache.put(b"k", principal())
    assert cache.get(b"k") is None


# Lookups

class Resolver:
    def __init__(self, answer=None):
        self.calls = []
        self.answer = answer

    def __call__(self, app, environ, site):
        self.calls.append(environ.get("HTTP_COOKIE"))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer or principal(environ.get("HTTP_COOKIE"))


def lookups(pool, resolver, ttl=60, lanes=1):
    return PrincipalLookups(ThreadsReactor(), pool, PrincipalCache(ttl=ttl), lanes=lanes,
                            resolve=resolver)


def results(d):
    out = []
    d.addBoth(out.append)
    return out


def test_one_lookup_for_many_handshakes_with_the_same_credentials():
    pool, resolver = ManualThreadPool(), Resolver()
    service = lookups(pool, resolver)
    waiting = [results(service.lookup({"HTTP_COOKIE": "__ac=1"}, "Plone")) for _ in range(100)]
    assert len(pool.calls) == 1
    pool.run()
    assert resolver.calls == ["__ac=1"]
    assert all(w == [principal("__ac=1")] for w in waiting)
    assert service.lookup({"HTTP_COOKIE": "__ac=1"}, "Plone") == principal("__ac=1")  # cached


def test_distinct_credentials_go_in_batches_one_lane_at_a_time(monkeypatch):
    monkeypatch.setattr(principals_module, "BATCH_SIZE", 4)
    pool, resolver = ManualThreadPool(), Resolver()
    service = lookups(pool, resolver)
    waiting = [results(service.lookup({"HTTP_COOKIE": f"__ac={i}"}, "Plone")) for i in range(10)]
    assert len(pool.calls) == 1  # one batch in the pool; the others wait on the reactor
    batches = 0
    while pool.calls:
        pool.run()
        batches += 1
        assert len(pool.calls) <= 1
    assert batches == 4 and len(resolver.calls) == 10  # 1 (at once), 4, 4, 1
    assert all(len(w) == 1 and isinstance(w[0], Principal) for w in waiting)


def test_a_batch_stops_when_its_time_is_up_and_the_rest_waits(monkeypatch):
    times = iter([0.0, 0.0, 0.05, 0.05, 0.05, 0.05])
    monkeypatch.setattr(principals_module.time, "monotonic", lambda: next(times, 1.0))
    pool, resolver = ManualThreadPool(), Resolver()
    service = lookups(pool, resolver)
    waiting = [results(service.lookup({"HTTP_COOKIE": f"__ac={i}"}, "Plone")) for i in range(3)]
    pool.run()
    assert len(resolver.calls) == 1 and [len(w) for w in waiting] == [1, 0, 0]
    while pool.calls:
        pool.run()
    assert [len(w) for w in waiting] == [1, 1, 1]


def test_a_page_request_waits_for_one_batch_not_for_the_storm():
    """The pool is FIFO: what is queued in it when a page arrives runs first. Lookups are
    queued on the reactor and only one batch at a time goes to the pool."""
    pool, resolver = ManualThreadPool(), Resolver()
    service = lookups(pool, resolver)
    for i in range(1000):
        service.lookup({"HTTP_COOKIE": f"__ac={i}"}, "Plone")
    pool.callInThreadWithCallback(lambda ok, result: None, lambda: "page")
    assert len(pool.calls) == 2  # one batch of lookups, then the page


def test_lookups_nobody_waits_for_are_not_made():
    pool, resolver = ManualThreadPool(), Resolver()
    service = lookups(pool, resolver)
    first = results(service.lookup({"HTTP_COOKIE": "a"}, "Plone"))
    gone = results(service.lookup({"HTTP_COOKIE": "b"}, "Plone", still_wanted=lambda: False))
    pool.run()
    assert resolver.calls == ["a"]
    assert len(first) == 1 and gone[0].check(Gone)


def test_refusals_reach_every_waiter_and_are_not_cached():
    pool = SynchronousThreadPool()
    resolver = Resolver(AuthenticationFailed(404, "no site"))
    service = lookups(pool, resolver)
    outcome = results(service.lookup({}, "Nope"))
    assert outcome[0].check(AuthenticationFailed)
    assert isinstance(service.lookup({}, "Nope"), Deferred) and len(resolver.calls) == 2


def test_a_change_while_a_lookup_runs_makes_it_run_again():
    pool, resolver = ManualThreadPool(), Resolver()
    service = lookups(pool, resolver)
    waiting = results(service.lookup({"HTTP_COOKIE": "jane"}, "Plone"))
    onResult, f, args, kwargs = pool.calls.pop()
    answer = f(*args, **kwargs)  # Zope answered with the roles from before the change...
    service.forget({"jane"})  # ...and the change arrived before the answer
    onResult(True, answer)
    assert waiting == [] and len(pool.calls) == 1  # asked again
    pool.run()
    assert waiting == [principal("jane")]


def test_lost_messages_clear_the_cache():
    service = lookups(SynchronousThreadPool(), Resolver())
    results(service.lookup({"HTTP_COOKIE": "jane"}, "Plone"))
    assert len(service.cache) == 1
    service.forget(None)
    assert len(service.cache) == 0


# The hub applies principal changes

def test_changed_tokens_apply_to_live_connections_and_removed_users_are_closed():
    hub = Hub()
    forgotten = []
    hub.principal_listeners.append(lambda users, tokens, site: forgotten.append((users, tokens)))
    sent, closed = {}, []

    def connection(userid, tokens):
        sent[userid] = []
        subscriber = Subscriber(frozenset(tokens), ["/Plone"], sent[userid].append, userid=userid,
                                close=lambda code, reason: closed.append((userid, code)),
                                site="/Plone")
        hub.add(subscriber)

    connection("rev", {"Member", "Reviewer", "user:rev"})
    connection("gone", {"Member", "user:gone"})
    connection("grouped", {"Member", "user:grouped", "user:oldgroup"})
    connection("other", {"Member", "Reviewer", "user:other"})
    review = Event("transition", "/Plone/doc", guard={"Reviewer"})
    assert hub.deliver(review) == 2
    hub.deliver(PrincipalChange(users={"rev": ["Member", "user:rev"]}, removed=("gone", "oldgroup"),
                                site="/Plone"))
    assert sorted(closed) == [("gone", 4001), ("grouped", 4001)]
    assert len(hub) == 2
    assert hub.deliver(review) == 1 and len(sent["rev"]) == 1 and len(sent["other"]) == 2
    [(users, tokens)] = forgotten
    assert users == {"rev", "gone", "oldgroup"} and tokens == {"user:gone", "user:oldgroup"}


def test_a_principal_change_is_numbered_with_the_events_and_never_sent():
    hub = Hub()
    sent = []
    hub.add(Subscriber({"Member"}, ["/"], sent.append))
    hub.deliver(Event("created", "/Plone/a", guard={"Member"}, instance="a", epoch="e", seq=1))
    hub.deliver(PrincipalChange(instance="a", epoch="e", seq=2))
    hub.deliver(Event("created", "/Plone/b", guard={"Member"}, instance="a", epoch="e", seq=3))
    assert len(sent) == 2 and hub.gaps == 0


def test_principal_change_round_trips_on_the_wire():
    from txzserver.bus.message import from_wire
    change = PrincipalChange(users={"jane": ["Member"]}, removed=["g"], logged_out=["joe"]).stamped(
        "alpha", "e1", 7)
    assert from_wire(change.to_wire()) == change
    event = Event("created", "/Plone/a", guard={"Member"})
    assert from_wire(event.to_wire()) == event
    with pytest.raises(ValueError):
        from_wire(b'{"kind": "other"}')


# Through the endpoint: one Zope publish for many handshakes

def test_handshakes_with_the_same_credentials_ask_zope_once(monkeypatch):
    endpoint = Endpoint(monkeypatch)
    clients = [endpoint.connect(b"/ws", headers=[b"Cookie: __ac=abc"]) for _ in range(5)]
    assert all(c.status == 101 for c in clients)
    assert endpoint.pool.calls == 1 and len(endpoint.hub) == 5
    endpoint.connect(b"/ws", headers=[b"Cookie: __ac=other"])
    assert endpoint.pool.calls == 2


def test_principal_cache_ttl_zero_asks_zope_every_time(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(principal_cache_ttl=0))
    for _ in range(3):
        assert endpoint.connect(b"/ws").status == 101
    assert endpoint.pool.calls == 3


def test_an_idle_connection_keeps_no_handshake(monkeypatch):
    endpoint = Endpoint(monkeypatch, app=ZopeApp())
    client = endpoint.connect(b"/ws", headers=[b"Authorization: Basic amFuZTpzZWNyZXQ="])
    protocol = client.protocol
    assert protocol.handshake is None and protocol.http_request_data is None
    assert protocol.subscriber.userid == "jane"


def test_a_client_offering_compression_gets_none(monkeypatch):
    """Browsers offer permessage-deflate; the options of the per-factory protocol class (a
    function among them) answer without it: every connection gets the same frames."""
    endpoint = Endpoint(monkeypatch)
    client = endpoint.connect(b"/ws", headers=[b"Sec-WebSocket-Extensions: permessage-deflate;"
                                               b" client_max_window_bits"])
    assert client.status == 101
    assert b"sec-websocket-extensions" not in client.headers
