"""The principal cache key: who a handshake is depends on its credentials, on the client
address Zope sees (Zope user ``domains``, IP-based role plugins) and on the headers named by
``principal-cache-header`` (a PAS plugin reading an SSO front's header)."""

from twisted.internet.address import IPv4Address

from tests.robustness import ROWS
from txzserver.config.datatypes import WebSocketSettings
from txzserver.websocket.principals import credentials_key, header_keys

from .wsframes import Endpoint

FIGURES = ROWS["ws_cache_key"].figures


def peer(host):
    return IPv4Address("TCP", host, 40000)


def test_the_address_zope_sees_is_part_of_the_key():
    base = {"REMOTE_ADDR": "10.0.0.1"}
    key = credentials_key(base, "Plone")
    assert credentials_key({"REMOTE_ADDR": "10.0.0.2"}, "Plone") != key
    # behind a trusted proxy (the environ keeps X-Forwarded-For from trusted proxies only)
    proxied = dict(base, HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert credentials_key(proxied, "Plone") != key
    assert credentials_key(dict(base, HTTP_X_FORWARDED_FOR="198.51.100.2"), "Plone") \
        != credentials_key(proxied, "Plone")


def test_extra_headers_split_the_key_only_when_configured():
    extra = header_keys(["X-Remote-User"])
    assert extra == ("HTTP_X_REMOTE_USER",)
    a, b = {"HTTP_X_REMOTE_USER": "alice"}, {"HTTP_X_REMOTE_USER": "bob"}
    assert credentials_key(a, "Plone") == credentials_key(b, "Plone")  # not configured
    assert credentials_key(a, "Plone", extra) != credentials_key(b, "Plone", extra)


def test_anonymous_clients_from_different_addresses_are_looked_up_apart(monkeypatch):
    endpoint = Endpoint(monkeypatch)
    addresses = [f"192.0.2.{n}" for n in range(1, FIGURES["addresses"] + 1)]
    for host in addresses:
        for _ in range(FIGURES["per_address"]):
            assert endpoint.connect(b"/ws", peer=peer(host)).status == 101
    # one Zope lookup per address: the clients of one address share it, no two addresses do
    assert endpoint.pool.calls == FIGURES["addresses"]
    assert len(endpoint.hub) == FIGURES["addresses"] * FIGURES["per_address"]


def test_a_configured_header_splits_anonymous_lookups(monkeypatch):
    endpoint = Endpoint(monkeypatch, websocket=WebSocketSettings(
        principal_cache_headers=(FIGURES["header"],)))
    header = FIGURES["header"].encode()
    for user in (b"alice", b"bob", b"alice"):
        assert endpoint.connect(b"/ws", headers=[header + b": " + user]).status == 101
    assert endpoint.pool.calls == 2  # alice once, bob once
    assert endpoint.connect(b"/ws").status == 101  # without the header: a third lookup
    assert endpoint.pool.calls == 3
