"""On a real Plone site: an event's actor reaches only those Plone's byline shows the author to,
and a move's old path only those who could see the old location.

A script (tests/support/plone_actor_script.py) runs inside Zope on a copy of the Plone template,
records the events the add-on publishes (wire form) and the catalog tokens of an anonymous user
and a member; the events then go through a real fan-out (Hub) to subscribers holding those
tokens.
"""

import json

import pytest

from tests.robustness import ROWS
from tests.support.instance import ROOT, SITE_ID, run_site_script
from txzserver.bus.message import from_wire
from txzserver.websocket.fanout import Hub, Subscriber

SCRIPT = ROOT / "tests" / "support" / "plone_actor_script.py"
FIGURES = ROWS["event_actor"].figures


@pytest.fixture(scope="module")
def results(tmp_path_factory, plone_template):
    return run_site_script(tmp_path_factory.mktemp("plone-actor"), plone_template, SCRIPT,
                           SITE_ID)[1]


def only_event(results, label):
    events = [from_wire(wire.encode()) for wire in results[label]]
    assert len(events) == 1, f"{label}: expected one event, got {events}"
    return events[0]


def received(results, event):
    """{who: the message a connection with that user's real tokens receives}."""
    hub, got = Hub(), {}
    for who, tokens in results["tokens"].items():
        hub.add(Subscriber(frozenset(tokens), [f"/{SITE_ID}"],
                           lambda payload, who=who: got.__setitem__(who, json.loads(payload))))
    hub.deliver(event)
    return got


def test_real_tokens_are_what_the_actor_guard_assumes(results):
    assert results["tokens"]["anonymous"] == ["Anonymous"]
    assert {"Anonymous", "Authenticated", "Member", "user:mia"} <= set(results["tokens"]["member"])


def test_anonymous_users_see_no_author_unless_the_site_allows_it(results):
    hidden = only_event(results, "edit_hidden")
    assert hidden.actor == "admin" and hidden.guard == frozenset({"Anonymous"})
    assert hidden.actor_guard == frozenset({"Authenticated"})
    got = received(results, hidden)
    assert (got["anonymous"]["actor"], got["member"]["actor"]) == ("", "admin")
    shown = only_event(results, "edit_shown")
    assert shown.actor_guard == frozenset({"Anonymous"})
    got = received(results, shown)
    assert (got["anonymous"]["actor"], got["member"]["actor"]) == ("admin", "admin")


def test_the_old_path_goes_only_to_those_who_could_see_it(results):
    out = only_event(results, "out_of_secret")  # published, out of a private folder
    assert (out.path, out.guard) == (f"/{SITE_ID}/public/doc", frozenset({"Anonymous"}))
    assert out.message == "moved"
    assert {m["message"] for m in received(results, out).values()} == {"moved"}
    along = only_event(results, "public_to_public")  # both folders public: nothing new told
    assert along.message == f"moved from /{SITE_ID}/public/doc"
    renamed = only_event(results, "private_rename")  # the same audience before and after
    assert renamed.message == f"moved from /{SITE_ID}/secret/draft"
    assert "Anonymous" not in renamed.guard
