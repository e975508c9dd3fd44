"""Events say no more than Plone shows: the actor only to connections holding one of the
event's ``actor_guard`` tokens (the rest get ``actor`` ""), each variant encoded once; the old
path of a move only when every receiver could see the old location."""

import json

import pytest

from tests.robustness import ROWS
from txzserver.bus import Event
from txzserver.bus.message import from_wire
from txzserver.plone.events import all_could_see
from txzserver.websocket.fanout import Hub, Subscriber

from .wsframes import Endpoint

FIGURES = ROWS["event_actor"].figures
ANONYMOUS = frozenset({"Anonymous"})
MEMBER = frozenset({"Anonymous", "Authenticated", "Member", "user:bob"})


def public_event(actor_guard=("Authenticated",), **fields):
    return Event("modified", "/Plone/news/a", actor="jane@example.org", guard=ANONYMOUS,
                 actor_guard=frozenset(actor_guard), **fields)


def test_anonymous_connections_get_no_actor_and_each_variant_is_encoded_once():
    hub, sent = Hub(), []
    for n in range(FIGURES["connections"]):
        tokens = ANONYMOUS if n % 2 else MEMBER
        hub.add(Subscriber(tokens, ["/Plone"], lambda p, t=tokens: sent.append((t, p))))
    assert hub.deliver(public_event()) == FIGURES["connections"]
    actors = {tokens: {json.loads(p)["actor"] for t, p in sent if t == tokens}
              for tokens in (ANONYMOUS, MEMBER)}
    assert actors == {ANONYMOUS: {""}, MEMBER: {"jane@example.org"}}
    assert len({id(p) for _, p in sent}) == 2  # one bytes object per variant, not per connection


def test_a_site_that_shows_authors_to_anonymous_users_sends_the_actor_to_everyone():
    hub, sent = Hub(), []
    for tokens in (ANONYMOUS, MEMBER):
        hub.add(Subscriber(tokens, ["/"], sent.append))
    hub.deliver(public_event(actor_guard=("Anonymous",)))
    assert [json.loads(p)["actor"] for p in sent] == ["jane@example.org"] * 2
    assert len({id(p) for p in sent}) == 1


def test_an_event_without_actor_guard_shows_its_actor_to_nobody():
    """Fails closed: a publisher that names no actor_guard (an older instance) leaks nothing."""
    hub, sent = Hub(), []
    hub.add(Subscriber(MEMBER, ["/"], sent.append))
    hub.deliver(public_event(actor_guard=()))
    assert json.loads(sent[0])["actor"] == ""


def test_actor_guard_crosses_the_bus_but_never_reaches_browsers():
    event = public_event()
    wire = json.loads(event.to_wire())
    assert wire["actor_guard"] == ["Authenticated"]
    assert from_wire(event.to_wire()) == event
    assert "actor_guard" not in event.public() and "guard" not in event.public()
    with pytest.raises(TypeError, match="actor_guard"):
        from_wire(event.to_wire().replace(b'"actor_guard":["Authenticated"]',
                                          b'"actor_guard":"Authenticated"'))


def test_websocket_clients_receive_the_actor_only_when_allowed(monkeypatch):
    endpoint = Endpoint(monkeypatch)
    endpoint.app.principal = {"userid": "", "tokens": sorted(ANONYMOUS), "site_path": "/Plone"}
    anonymous = endpoint.connect(b"/ws")
    endpoint.app.principal = {"userid": "bob", "tokens": sorted(MEMBER), "site_path": "/Plone"}
    member = endpoint.connect(b"/ws", headers=[b"Cookie: __ac=bob"])
    assert (anonymous.status, member.status) == (101, 101)
    anonymous.messages(), member.messages()  # the welcomes
    assert endpoint.hub.deliver(public_event()) == 2
    [to_anonymous], [to_member] = anonymous.messages(), member.messages()
    assert (to_anonymous["actor"], to_member["actor"]) == ("", "jane@example.org")
    assert {k: v for k, v in to_anonymous.items() if k != "actor"} \
        == {k: v for k, v in to_member.items() if k != "actor"}


# The old path of a move: kept only when every receiver could see the old location

@pytest.mark.parametrize("audience, old, kept", [
    ({"Anonymous"}, {"Anonymous"}, True),
    ({"Manager", "user:admin"}, {"Anonymous"}, True),  # the old folder was public
    ({"Manager"}, {"Authenticated"}, True),  # every member holds "Authenticated"
    ({"Anonymous"}, {"Authenticated"}, False),  # anonymous receivers, a members-only folder
    ({"Anonymous"}, {"Manager", "user:admin"}, False),  # published out of a private folder
    ({"Reviewer", "user:admin"}, {"Manager", "user:admin"}, False),
    ({"Manager", "user:admin"}, {"Manager", "user:admin", "Reviewer"}, True),
])
def test_the_old_path_is_told_only_to_those_who_could_see_it(audience, old, kept):
    assert all_could_see(frozenset(audience), frozenset(old)) is kept
