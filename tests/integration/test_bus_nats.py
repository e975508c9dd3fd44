"""The nats event bus against real nats-server nodes (tests/support/nats.py).

First NatsBus objects in this process (each with its own hub, a thread acting as its reactor)
for the failure cases that need many events: a NATS restart (clean and kill -9) during a
burst of 1,000, an instance away and back, retention that really loses events, a node of a
3-node cluster killed. Then two real txzserver instances on ZEO with WebSocket clients.
"""

import time

import pytest

from tests.support.cluster import running_cluster, zeo_storage_source
from tests.support.nats import NatsCluster
from tests.support.natsbus import made_nodes, publishing
from tests.support.natsbus import public_events as events
from tests.support.server import wait_for

BURST = 1000


@pytest.fixture
def nodes():
    with made_nodes() as make:
        yield make


def expected(prefix, count, start=0):
    return [f"/Plone/{prefix}/{n}" for n in range(start, start + count)]


def delivered(node, prefix):
    return [path for path in list(node.hub.paths) if path.startswith(f"/Plone/{prefix}/")]


def wait_delivered(node, prefix, count, timeout=60):
    wait_for(lambda: len(delivered(node, prefix)) >= count, timeout,
             what=f"{count} events of {prefix} at {node.bus.instance}")


def each_got_all_once(nodes, prefix, count):
    """Every node delivered the ``count`` events of ``prefix`` once, in order, and no gap
    (also a second after the last arrived: a stray second delivery has come by then)."""
    for node in nodes:
        wait_delivered(node, prefix, count, timeout=120)
    time.sleep(1)
    for node in nodes:
        assert delivered(node, prefix) == expected(prefix, count), node.bus.instance
        assert node.hub.gap_list == []


def test_an_event_reaches_every_instance_once(nats, nodes):
    a, b = nodes([nats.url], "a").ready(), nodes([nats.url], "b").ready()
    a.bus.publish(events("one", 1))
    wait_delivered(b, "one", 1)
    wait_for(lambda: a.bus.published == 1 and a.bus.lag is not None, 10, what="came back")
    time.sleep(0.5)  # long enough for a stray second delivery
    assert delivered(a, "one") == delivered(b, "one") == expected("one", 1)
    assert a.bus.arrivals.duplicates == 1  # its own copy from the stream, not delivered again
    assert a.hub.gap_list == b.hub.gap_list == []


def test_events_published_from_many_threads_at_once_all_arrive_in_each_threads_order(
        nats, nodes):
    """Zope's publisher threads publish while the loop sends the queue."""
    import threading
    a, b = nodes([nats.url], "a").ready(), nodes([nats.url], "b").ready()

    def publish(thread):
        for n in range(250):
            a.bus.publish(events(f"thread{thread}", 1, start=n))

    threads = [threading.Thread(target=publish, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: len(b.hub.paths) >= 1000, 120, what="1,000 events at b")
    for t in range(4):
        assert delivered(b, f"thread{t}") == expected(f"thread{t}", 250)
    assert a.bus.published == 1000 and b.hub.gap_list == []


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_nats_restart_during_a_burst_loses_nothing(nats, nodes, how):
    """1,000 events published while nats-server is stopped (SIGTERM, or kill -9) and started
    again mid-burst: each instance delivers all 1,000 once, in order, and no gap."""
    a, b = nodes([nats.url], "a").ready(), nodes([nats.url], "b").ready()
    burst = events("burst", BURST)
    a.bus.publish(burst[:300])
    getattr(nats, how)()
    a.bus.publish(burst[300:700])  # NATS is away: they wait in a's queue
    wait_for(lambda: not any(a.bus.links_up().values()), 30, what="a sees NATS down")
    nats.start()
    a.bus.publish(burst[700:])
    each_got_all_once((a, b), "burst", BURST)
    assert a.bus.dropped == 0


def test_an_instance_away_gets_what_it_missed_once(nats, nodes, tmp_path):
    a, b = nodes([nats.url], "a").ready(), nodes([nats.url], "b").ready()
    a.bus.publish(events("before", 10))
    wait_delivered(b, "before", 10)
    b.close()
    a.bus.publish(events("away", 300))
    wait_for(lambda: a.bus.published == 310, 30, what="published")
    b2 = nodes([nats.url], "b").ready()  # the same instance name: its durable consumer
    wait_delivered(b2, "away", 300)
    a.bus.publish(events("after", 5))
    wait_delivered(b2, "after", 5)
    time.sleep(0.5)
    assert delivered(b2, "before") == []  # acknowledged before it went away
    assert delivered(b2, "away") == expected("away", 300)
    assert delivered(b2, "after") == expected("after", 5)
    assert b2.hub.gap_list == []


def test_retention_loss_is_exactly_one_gap(nats, nodes):
    """A stream kept small (max-bytes): an instance away while more than it holds was
    published gets one gap, then the events still kept, in order."""
    small = {"stream": "SMALL", "max_bytes": 64 * 1024}
    a, b = nodes([nats.url], "a", **small).ready(), nodes([nats.url], "b", **small).ready()
    a.bus.publish(events("seen", 3))
    wait_delivered(b, "seen", 3)
    b.close()
    a.bus.publish(events("lost", 1000))  # ~250 KB of events: most are gone from the stream
    wait_for(lambda: a.bus.published == 1003, 60, what="published")
    b2 = nodes([nats.url], "b", **small).ready()
    a.bus.publish(events("later", 3))
    wait_delivered(b2, "later", 3)
    time.sleep(0.5)
    assert len(b2.hub.gap_list) == 1, b2.hub.gap_list
    [(who, missed)] = b2.hub.gap_list
    kept = delivered(b2, "lost")
    assert who == "SMALL" and missed == 1000 - len(kept) and 0 < len(kept) < 1000
    assert kept == expected("lost", 1000)[-len(kept):]  # the newest ones, in order
    assert delivered(b2, "later") == expected("later", 3)
    # (a, which published them, may have been told of a loss too: the stream dropped some
    # before a read its own copies back; its clients had them at once)


def test_a_cluster_node_killed_during_a_burst_loses_nothing(tmp_path, nodes):
    cluster = NatsCluster(tmp_path / "cluster", 3).start()
    try:
        a = nodes(cluster.urls, "a").ready(60)
        b = nodes(cluster.urls[::-1], "b").ready(60)
        burst = events("cburst", BURST)
        a.bus.publish(burst[:400])
        wait_for(lambda: a.bus.published >= 100, 30, what="burst under way")
        port = a.bus._nc.connected_url.port  # the node the publisher is connected to
        [victim] = [node for node in cluster.nodes if node.port == port]
        victim.kill()
        a.bus.publish(burst[400:])
        each_got_all_once((a, b), "cburst", BURST)
    finally:
        for node in cluster.nodes:
            node.kill()


# Two real txzserver instances on ZEO, WebSocket clients, a real nats-server

def nats_bus_conf(url):
    return (f"<event-bus>\n  backend nats\n  nats-server {url}\n</event-bus>\n"
            "<health-server>\n  address 127.0.0.1:0\n  check-interval 1s\n</health-server>\n"
            "<metrics-server>\n  address 127.0.0.1:0\n</metrics-server>\n")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, plone_template, nats_server):
    with running_cluster(tmp_path_factory.mktemp("natsbus"), zeo_storage_source(plone_template),
                         ("alpha", "beta"), extra=nats_bus_conf(nats_server.url)) as cluster:
        yield cluster


def ws_url(server, path):
    return server.url("/Plone/ws").replace("http://", "ws://") + f"?path={path}"


def watch(server, path, name="anonymous"):
    from tests.support.wsclient import Collector
    return Collector(ws_url(server, path), name=name).start_and_wait()


def gaps(client):
    return [m for m in client.messages if m.get("type") == "gap"]


def paths_of(client, prefix):
    return [e["path"] for e in client.events() if e["path"].startswith(prefix)]


def wait_paths(client, prefix, count, timeout=120):
    wait_for(lambda: len(paths_of(client, prefix)) >= count, timeout,
             what=f"{count} events under {prefix} at {client.name}")


def clients_got_all_once(clients, prefix, name):
    """Each WebSocket client got the BURST events ``name`` (under ``prefix``) once, in order,
    and no gap (also a second after the last arrived)."""
    for client in clients:
        wait_paths(client, prefix, BURST)
    time.sleep(1)
    for client in clients:
        assert paths_of(client, prefix) == expected(name, BURST), client.name
        assert gaps(client) == [], client.name


def test_edit_on_alpha_reaches_a_client_on_beta_once(cluster):
    from tests.support.instance import ADMIN
    from tests.support.restapi import api
    from tests.support.wsclient import Collector, basic
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    on_beta = Collector(ws_url(beta, "/Plone/natsdoc"), basic(*ADMIN), name="beta").start_and_wait()
    on_alpha = Collector(ws_url(alpha, "/Plone/natsdoc"), basic(*ADMIN), name="alpha").start_and_wait()
    try:
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "natsdoc", "title": "n0"})
        api(alpha, "PATCH", "/Plone/natsdoc", json={"title": "n1"})
        for client in (on_beta, on_alpha):
            client.wait_for_event(type="modified", title="n1", timeout=30)
        time.sleep(1)  # long enough for a stray second delivery
        for client in (on_beta, on_alpha):
            assert [(e["type"], e["title"]) for e in client.events()] == [
                ("created", "n0"), ("modified", "n1")], client.name
            assert gaps(client) == []
    finally:
        on_beta.stop()
        on_alpha.stop()


@pytest.fixture
def publisher(nats_server):
    """The test's own publisher on the instances' stream: a NatsBus named "burst"."""
    with publishing([nats_server.url], "burst") as node:
        yield node


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_burst_across_a_nats_restart_reaches_clients_on_both_instances_once(
        cluster, nats_server, publisher, how):
    """1,000 events, nats-server stopped (SIGTERM, or kill -9) and started again mid-burst: a
    WebSocket client on each instance gets every one once, in order, and no gap."""
    prefix = f"/Plone/burst-{how}"
    clients = [watch(cluster.instances[name], prefix, name) for name in ("alpha", "beta")]
    try:
        burst = events(f"burst-{how}", BURST)
        publisher.bus.publish(burst[:300])
        wait_for(lambda: publisher.bus.published >= 100, 30, what="burst under way")
        getattr(nats_server, how)()
        publisher.bus.publish(burst[300:700])
        nats_server.start()
        publisher.bus.publish(burst[700:])
        clients_got_all_once(clients, prefix, f"burst-{how}")
    finally:
        for client in clients:
            client.stop()


def test_instance_killed_and_restarted_no_duplicates_no_false_gap(cluster, publisher):
    """beta killed -9 while events are published, started again: its durable consumer resumes
    where it acknowledged; a client of the new beta gets the next events once and no gap."""
    import signal

    from tests.support.server import ServerProcess
    beta = cluster.instances["beta"]
    prefix = "/Plone/restarted"
    before = watch(beta, prefix, "beta-before")
    publisher.bus.publish(events("restarted", 50))
    wait_paths(before, prefix, 50)
    before.stop()
    beta.stop(sig=signal.SIGKILL)
    publisher.bus.publish(events("restarted", 200, start=50))
    wait_for(lambda: publisher.bus.published >= 250, 30, what="published while beta is down")
    beta.event_log.rename(beta.event_log.with_suffix(".log.1"))  # ports are read from the new one
    cluster.instances["beta"] = beta = ServerProcess(beta.conf).start()
    after = watch(beta, prefix, "beta-after")
    try:
        publisher.bus.publish(events("restarted", 20, start=250))
        wait_paths(after, prefix, 20)
        time.sleep(1)
        got = paths_of(after, prefix)
        assert len(got) == len(set(got)), "an event reached the client twice"
        assert got[-20:] == expected("restarted", 20, start=250)
        assert got == expected("restarted", 270)[-len(got):]  # replayed ones, if any, in order
        assert gaps(after) == []
        print(f"the new beta's client got {len(got) - 20} of the 200 events missed while it was"
              " down (replayed before it connected, or after)")
    finally:
        after.stop()


@pytest.fixture(scope="module")
def nats3(tmp_path_factory):
    cluster = NatsCluster(tmp_path_factory.mktemp("nats3"), 3).start()
    try:
        yield cluster
    finally:
        for node in cluster.nodes:
            node.kill()


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory, plone_template, nats3):
    """alpha and beta on a 3-node NATS cluster (the stream with 3 replicas)."""
    servers = "".join(f"  nats-server {url}\n" for url in nats3.urls)
    with running_cluster(tmp_path_factory.mktemp("natsbus3"), zeo_storage_source(plone_template),
                         ("alpha", "beta"),
                         extra=f"<event-bus>\n  backend nats\n{servers}</event-bus>\n") as cluster:
        yield cluster


def test_a_nats_node_killed_during_a_burst_leaves_clients_on_both_instances_whole(
        cluster3, nats3):
    """1,000 events, one of the 3 NATS nodes killed -9 in the middle: a WebSocket client on
    each instance gets every one once, in order, no gap."""
    prefix = "/Plone/burst3"
    clients = [watch(cluster3.instances[name], prefix, name) for name in ("alpha", "beta")]
    try:
        with publishing(nats3.urls, "burst3", timeout=60) as publisher:
            burst = events("burst3", BURST)
            publisher.bus.publish(burst[:400])
            wait_for(lambda: publisher.bus.published >= 100, 30, what="burst under way")
            # the node the publisher is connected to: it must go on through another
            port = publisher.bus._nc.connected_url.port
            [victim] = [node for node in nats3.nodes if node.port == port]
            victim.kill()
            publisher.bus.publish(burst[400:])
            clients_got_all_once(clients, prefix, "burst3")
    finally:
        for client in clients:
            client.stop()


def test_nats_down_is_degraded_not_unready_and_metrics_count(cluster, nats_server):
    """The bus's link feeds readiness as a shared dependency: NATS gone, /healthz/ready stays
    200 with event-bus degraded; back, ok again. The bus's counters reach the metrics."""
    import httpx
    alpha = cluster.instances["alpha"]

    def ready():
        response = httpx.get(alpha.url("/healthz/ready", kind="health"), timeout=10)
        return response.status_code, response.json()

    wait_for(lambda: ready()[1]["checks"]["event-bus"]["status"] == "ok", 30, what="bus ok")
    nats_server.kill()
    try:
        wait_for(lambda: ready()[1]["checks"]["event-bus"]["status"] == "degraded", 60,
                 what="event-bus degraded")
        status, body = ready()
        assert status == 200 and body["status"] == "degraded", body
    finally:
        nats_server.start()
    wait_for(lambda: ready()[1]["checks"]["event-bus"]["status"] == "ok", 60, what="bus ok again")
    from tests.support.restapi import api
    api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "counted", "title": "c"})

    def received():
        text = httpx.get(alpha.url("/metrics", kind="metrics"), timeout=10).text
        return [float(line.split()[1]) for line in text.splitlines()
                if line.startswith("txzserver_events_received_total ")]

    wait_for(lambda: received() and received()[0] > 0, 30, what="events received, in metrics")
