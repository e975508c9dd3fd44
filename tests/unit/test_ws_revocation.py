"""Revocation on live connections, through a real NotificationService and Autobahn protocol
over StringTransports (reactor: MemoryReactorClock, lookups in a synchronous pool).

A logout or a new password (``PrincipalChange.logged_out``) closes every connection of that
user in that site with 4001; after a bus gap, every connection's principal is looked up again
(once per distinct credentials) and its tokens replaced, or the connection closed with 4001
when its credentials no longer name its user.
"""

import json

from tests.robustness import ROWS
from txzserver.bus.message import Event, PrincipalChange
from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket.fanout import REAUTHENTICATE

from .wsframes import CLOSE, TEXT, Endpoint, ZopeApp, close_code

REVOCATION = ROWS["ws_revocation"].figures
JANE = b"Authorization: Basic amFuZTpzZWNyZXQ="  # jane:secret
JANE_COOKIE = b"Cookie: __ac=jane-session"
BOB = b"Authorization: Basic Ym9iOnNlY3JldA=="  # bob:secret


class Users(ZopeApp):
    """The principal view answers per credentials: ``answers`` maps the Authorization or
    Cookie header to a principal dict (Anonymous otherwise), or to an HTTP status line."""

    def __init__(self):
        super().__init__()
        self.answers = {
            "Basic amFuZTpzZWNyZXQ=": {"userid": "jane", "tokens": ["Member", "Reviewer", "user:jane"],
                                       "site_path": "/Plone"},
            "__ac=jane-session": {"userid": "jane", "tokens": ["Member", "user:jane"],
                                  "site_path": "/Plone"},
            "Basic Ym9iOnNlY3JldA==": {"userid": "bob", "tokens": ["Member", "user:bob"],
                                       "site_path": "/Plone"},
        }
        self.lookups = []

    def __call__(self, environ, start_response):
        if not environ["PATH_INFO"].endswith("/@@txzserver-principal"):
            return super().__call__(environ, start_response)
        credentials = environ.get("HTTP_AUTHORIZATION") or environ.get("HTTP_COOKIE", "")
        self.lookups.append(credentials)
        answer = self.answers.get(credentials, {"userid": None, "tokens": ["Anonymous"],
                                                "site_path": "/Plone"})
        if isinstance(answer, str):
            start_response(answer, [("Content-Type", "text/plain")])
            return [b""]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode("utf-8")]


def endpoint_with(monkeypatch):
    app = Users()
    return Endpoint(monkeypatch, app=app, websocket=WebSocketSettings(ping_interval=0)), app


def opened(endpoint, header):
    client = endpoint.connect(b"/ws", headers=(header,))
    assert client.status == 101, client.status_line
    [welcome] = client.messages()
    return client, welcome


def closed_with(client):
    """(close code, reason) of the close frame the server sent, or None."""
    closes = [payload for opcode, payload in client.frames() if opcode == CLOSE]
    return (close_code(closes[0]), closes[0][2:].decode()) if closes else None


def texts(client):
    return [json.loads(payload) for opcode, payload in client.frames() if opcode == TEXT]


def stamped(message, seq):
    return message.stamped("alpha", "run-1", seq)


def test_a_logout_closes_every_connection_of_that_user_in_that_site(monkeypatch):
    endpoint, _ = endpoint_with(monkeypatch)
    basic, _ = opened(endpoint, JANE)
    cookie, _ = opened(endpoint, JANE_COOKIE)  # other credentials, same user: closed too
    bob, _ = opened(endpoint, BOB)
    # the same user id in another site is someone else: untouched
    endpoint.hub.deliver(PrincipalChange(logged_out=("jane",), site="/Other"))
    assert [closed_with(c) for c in (basic, cookie, bob)] == [None, None, None]

    endpoint.hub.deliver(PrincipalChange(logged_out=("jane",), site="/Plone"))
    reason = "your user logged out or changed its password: reconnect to authenticate again"
    assert closed_with(basic) == (REVOCATION["code"], reason)
    assert closed_with(cookie) == (REVOCATION["code"], reason)
    assert closed_with(bob) is None
    assert REAUTHENTICATE == REVOCATION["code"]
    assert {s.userid for s in endpoint.hub.subscribers} == {"bob"}  # no event reaches jane now


def test_a_logout_in_the_zope_root_closes_in_every_site(monkeypatch):
    endpoint, _ = endpoint_with(monkeypatch)
    basic, _ = opened(endpoint, JANE)
    endpoint.hub.deliver(PrincipalChange(logged_out=("jane",), site=""))
    assert closed_with(basic)[0] == REVOCATION["code"]


def test_removal_closes_and_a_role_change_retokens(monkeypatch):
    endpoint, _ = endpoint_with(monkeypatch)
    jane, _ = opened(endpoint, JANE)
    bob, _ = opened(endpoint, BOB)
    endpoint.hub.deliver(PrincipalChange(users={"jane": ["Member", "user:jane"]}, site="/Plone"))
    assert closed_with(jane) is None
    endpoint.hub.deliver(Event("created", "/Plone/doc", guard=frozenset({"Reviewer"})))
    assert texts(jane) == []  # Reviewer taken away on the live connection
    endpoint.hub.deliver(PrincipalChange(removed=("bob",), site="/Plone"))
    assert closed_with(bob) == (REVOCATION["code"], "your user or one of its groups was removed")


def test_after_a_gap_every_connection_is_looked_up_again_once_per_credentials(monkeypatch):
    endpoint, app = endpoint_with(monkeypatch)
    first, _ = opened(endpoint, JANE)
    second, _ = opened(endpoint, JANE)  # same credentials: from the cache, one object
    cookie, _ = opened(endpoint, JANE_COOKIE)
    bob, _ = opened(endpoint, BOB)
    assert app.lookups == ["Basic amFuZTpzZWNyZXQ=", "__ac=jane-session", "Basic Ym9iOnNlY3JldA=="]
    hub = endpoint.hub
    hub.deliver(stamped(Event("created", "/Plone/a", guard=frozenset({"Reviewer"})), 1))
    assert len(texts(first)) == len(texts(second)) == 1

    # Lost meanwhile: jane lost Reviewer, the session cookie was logged out (Anonymous now),
    # bob's credentials fail. Two messages of the run never arrive.
    app.answers["Basic amFuZTpzZWNyZXQ="] = {"userid": "jane", "tokens": ["Member", "user:jane"],
                                             "site_path": "/Plone"}
    del app.answers["__ac=jane-session"]
    app.answers["Basic Ym9iOnNlY3JldA=="] = "500 Internal Server Error"
    app.lookups.clear()
    hub.deliver(stamped(Event("created", "/Plone/b", guard=frozenset({"Reviewer"})), 4))

    assert sorted(app.lookups) == sorted(["Basic amFuZTpzZWNyZXQ=", "__ac=jane-session",
                                          "Basic Ym9iOnNlY3JldA=="])  # one per credentials
    assert hub.recomputed == 4
    for client in (first, second):
        assert [m["type"] for m in texts(client)] == ["gap"]  # b: Reviewer is gone
        assert closed_with(client) is None
    assert closed_with(cookie) == (REVOCATION["code"], "your credentials no longer name the user"
                                                      " this connection was opened for: reconnect")
    assert closed_with(bob) == (REVOCATION["code"],
                                "your credentials could not be checked again: reconnect")
    assert {s.tokens for s in hub.subscribers} == {frozenset({"Member", "user:jane"})}
