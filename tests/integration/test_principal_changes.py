"""Cached principal lookups on a real Plone site, and what invalidates them (a changed role or
group must reach a user's open connections on every instance, not only new handshakes).

Two instances on one ZEO server with a broker between them: a reviewer connected to both
receives "needs review" events; when an administrator removes the Reviewer role on alpha, the
reviewer's existing connections on alpha and beta stop receiving them, and a new handshake with
the same credentials (which beta had cached) does not either; added to the Reviewers group, the
existing connection receives them again. And one instance with two publisher threads keeps
serving its front page while 1,000 WebSocket clients reconnect at once, a Zope lookup each: the
pages, fetched from a process of their own, are judged against those just before the storm.
"""

import asyncio
import time

import httpx
import pytest

from tests.support.cluster import Cluster, zeo_storage_source
from tests.support.instance import ADMIN
from tests.support.latency import PageProbe
from tests.support.restapi import add_users, api
from tests.support.results import record
from tests.support.wsclient import Collector, basic
from tests.support.wsload import connect_many

PASSWORD = "secret-Passw0rd"
USER = "revoked"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, plone_template):
    cluster = Cluster(tmp_path_factory.mktemp("principals"), zeo_storage_source(plone_template))
    try:
        cluster.start_storage()
        cluster.start_broker()
        cluster.start_instance("alpha")
        cluster.start_instance("beta")
        add_users(cluster.instances["alpha"], {USER: ["Member", "Reviewer"]}, PASSWORD)
        yield cluster
    finally:
        cluster.stop()


def ws_url(server):
    return server.url("/Plone/ws").replace("http://", "ws://")


def submitted(server, doc_id, watcher):
    """Make a Document as admin on ``server``, submit it for review; wait until ``watcher``
    (admin, on the other instance) has its transition: everything published before has
    reached that instance's hub by then (one publisher, one broker, in order)."""
    api(server, "POST", "/Plone", json={"@type": "Document", "id": doc_id, "title": doc_id})
    api(server, "POST", f"/Plone/{doc_id}/@workflow/submit")
    path = f"/Plone/{doc_id}"
    watcher.wait_for_event(type="transition", path=path)
    return path


def settle(seconds=1.0):
    time.sleep(seconds)  # long enough for any stray delivery; deliveries are asserted with deadlines


def test_a_reviewer_whose_role_is_removed_stops_receiving(cluster):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    reviewer = basic(USER, PASSWORD)
    watcher = Collector(ws_url(beta), basic(*ADMIN), name="admin").start_and_wait()
    on_beta = Collector(ws_url(beta), reviewer, name="reviewer-beta").start_and_wait()
    on_alpha = Collector(ws_url(alpha), reviewer, name="reviewer-alpha").start_and_wait()
    clients = [watcher, on_beta, on_alpha]
    try:
        assert on_beta.welcome["user"] == USER
        path = submitted(alpha, "needs-review-1", watcher)
        for client in (on_beta, on_alpha):
            client.wait_for_event(type="transition", path=path, review_state="pending")
            [note] = client.wait_for_event(type="notification", path=path)  # txzserver:example-rules

        api(alpha, "PATCH", f"/Plone/@users/{USER}", json={"roles": {"Reviewer": False}})
        path = submitted(alpha, "needs-review-2", watcher)
        settle()
        assert not on_beta.events(path=path), "a revoked reviewer still receives on beta"
        assert not on_alpha.events(path=path), "a revoked reviewer still receives on alpha"
        assert on_beta.error is None and on_alpha.error is None  # still connected

        # beta had these credentials cached: a new handshake must not get the old roles
        again = Collector(ws_url(beta), reviewer, name="reviewer-again").start_and_wait()
        clients.append(again)
        path = submitted(alpha, "needs-review-3", watcher)
        settle()
        assert again.welcome["user"] == USER
        assert not again.events(path=path), "a new handshake got the cached roles"
        assert not on_beta.events(path=path)

        # the group route: a member of Reviewers again, the live connection receives again
        api(alpha, "PATCH", "/Plone/@groups/Reviewers", json={"users": {USER: True}})
        path = submitted(alpha, "needs-review-4", watcher)
        for client in (on_beta, on_alpha, again):
            client.wait_for_event(type="transition", path=path, review_state="pending")
    finally:
        for client in clients:
            client.stop()
    assert "tokens recomputed for changed principals: revoked" in alpha.log_text()


# A reconnect storm does not starve page requests

WEBSOCKET = "<websocket>\n  path /ws\n  max-connections 5000\n  ping-interval 0\n</websocket>"


@pytest.fixture(scope="module")
def storm_server(servers):
    return servers.start("storm", threads=2, extra=WEBSOCKET)


def test_front_page_is_served_during_a_reconnect_storm(storm_server):
    """1,000 clients with session cookies Zope has never seen (a lookup each, through PAS)
    reconnect at once; the front page is fetched meanwhile by a PageProbe, in a process of its
    own (the storm's clients run on this process's event loop and would delay its requests)."""
    server = storm_server
    count = 1000
    host, port = "127.0.0.1", server.port
    page = server.url("/Plone")
    httpx.get(page, timeout=60)

    async def warm_up():  # anonymous handshakes: the endpoint and its code paths are warm
        clients, failures = await connect_many(host, port, "/Plone/ws", count, concurrency=100)
        for client in clients:
            client.close()
        return len(clients), failures

    async def storm():
        clients, failures = await connect_many(
            host, port, "/Plone/ws", count, headers=lambda i: (("Cookie", f"__ac=storm-{i}"),),
            concurrency=100, timeout=60)
        for client in clients:
            client.close()
        return len(clients), failures

    connected, failures = asyncio.run(warm_up())
    assert connected == count and not failures, failures[:3]
    with PageProbe(page) as probe:
        probe.baseline(20)
        began = probe.mark()
        connected, failures = asyncio.run(storm())
        ended = probe.mark()
        assert connected == count and not failures, failures[:3]
        verdict = probe.verdict("during the reconnect storm", began, ended, min_samples=3)
    record("test_principal_changes", "reconnect_storm", clients=connected,
           storm_s=round(ended - began, 2), **verdict.figures())
    verdict.check()
