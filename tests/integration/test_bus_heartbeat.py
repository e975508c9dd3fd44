"""Losses no event follows become a gap: two real instances (alpha, beta) on one ZEO with a
real `txzserver broker` between them, heartbeats every second. The broker is stopped while
alpha commits (its PUB socket drops the events at once: ZMQ_IMMEDIATE), started again, and
alpha then publishes nothing more: beta's and alpha's own WebSocket clients each get exactly
one gap naming alpha and the number of events lost (alpha's own count of what it published),
carried by alpha's next heartbeat, and no second one while further heartbeats arrive. A third
instance (gamma, heartbeats a minute apart) that loses an event the same way and is then
stopped cleanly: its final heartbeat brings beta's clients the gap, well before any periodic one.
"""

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.robustness import ROWS
from tests.support.cluster import running_cluster
from tests.support.instance import ADMIN
from tests.support.restapi import api
from tests.support.server import wait_for
from tests.support.wsclient import Collector, basic

FIGURES = ROWS["bus_heartbeat"].figures
INTERVAL = float(FIGURES["test_interval"])  # seconds between heartbeats: heartbeat-interval
METRICS = "/internal/prom"
METRICS_SERVER = f"<metrics-server>\n  address 127.0.0.1:0\n  path {METRICS}/\n</metrics-server>"


def metric(server, name):
    answer = httpx.get(server.url(METRICS, kind="metrics"), timeout=10)
    assert answer.status_code == 200, answer.text
    return sum(sample.value for family in text_string_to_metric_families(answer.text)
               for sample in family.samples if sample.name == name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, plone_template):
    with running_cluster(tmp_path_factory.mktemp("heartbeat"), plone_template, ("alpha", "beta"),
                         broker=True, bus_extra=f"  heartbeat-interval {INTERVAL:g}s\n",
                         extra=METRICS_SERVER) as cluster:
        yield cluster


def listener(server, name):
    url = server.url("/Plone/ws").replace("http://", "ws://")
    return Collector(url, basic(*ADMIN), name=name).start_and_wait()


def gaps(client):
    client.check()
    return [m for m in client.messages if m.get("type") == "gap"]


def test_events_lost_while_the_broker_was_down_become_one_gap_when_alpha_goes_quiet(cluster):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    clients = {"alpha": listener(alpha, "alpha-client"), "beta": listener(beta, "beta-client")}
    try:
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "before", "title": "Before"})
        for client in clients.values():  # both hubs know alpha's run: the baseline
            client.wait_for_event(path="/Plone/before", timeout=60)
        heard = metric(beta, "txzserver_bus_heartbeats_total")
        wait_for(lambda: metric(beta, "txzserver_bus_heartbeats_total") >= heard + 2, 60,
                 what="heartbeats at beta")
        published = metric(alpha, "txzserver_events_published_total")

        cluster.broker.terminate()
        assert cluster.broker.wait(10) == 0
        for n in (1, 2):  # committed while nothing carries alpha's events
            api(alpha, "POST", "/Plone", json={"@type": "Document", "id": f"lost-{n}",
                                                "title": f"Lost {n}"})
        lost = metric(alpha, "txzserver_events_published_total") - published
        assert lost >= 2
        cluster.start_broker()  # same endpoints; alpha publishes nothing more
        back = time.monotonic()
        wait_for(lambda: all(gaps(c) for c in clients.values()), 30 + 20 * INTERVAL,
                 what="the gap at both clients")
        took = time.monotonic() - back
        expected = [{"type": "gap", "instance": "alpha", "missed": int(lost)}]

        # a few more heartbeats of both runs: no second gap for the same loss
        heard = metric(beta, "txzserver_bus_heartbeats_total")
        wait_for(lambda: metric(beta, "txzserver_bus_heartbeats_total") >= heard + 6, 60,
                 what="more heartbeats at beta")
        print(f"{int(lost)} events lost; the gap came {took:.1f} s after the broker was back"
              f" (heartbeat interval {INTERVAL:g} s)")
        for name, client in clients.items():
            assert gaps(client) == expected, name
            assert client.events(path="/Plone/lost-1") == []  # lost, not late
        for server in (alpha, beta):
            assert metric(server, "txzserver_events_gaps_by_heartbeat_total") == 1
            assert metric(server, "txzserver_events_gaps_total") == 1

        # the bus works again: a new event reaches beta, with no gap before it
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "after", "title": "After"})
        clients["beta"].wait_for_event(path="/Plone/after", timeout=60)
        assert gaps(clients["beta"]) == expected
    finally:
        for client in clients.values():
            client.stop()


def test_the_default_heartbeat_interval_is_the_rows():
    from txzserver.config.datatypes import EventBusSettings
    assert EventBusSettings("ipc:///x/p", "ipc:///x/s").heartbeat_interval == FIGURES["interval"]


def test_a_clean_stop_after_lost_events_brings_the_gap_with_the_final_heartbeat(cluster):
    beta = cluster.instances["beta"]
    gamma = cluster.start_instance("gamma", bus_extra="  heartbeat-interval 60s\n",
                                   extra=METRICS_SERVER)
    client = listener(beta, "beta-client-2")
    try:
        api(gamma, "POST", "/Plone", json={"@type": "Document", "id": "gamma-before",
                                            "title": "Before"})
        client.wait_for_event(path="/Plone/gamma-before", timeout=60)  # the baseline
        published = metric(gamma, "txzserver_events_published_total")
        cluster.broker.terminate()
        assert cluster.broker.wait(10) == 0
        api(gamma, "POST", "/Plone", json={"@type": "Document", "id": "gamma-lost",
                                            "title": "Lost"})
        lost = int(metric(gamma, "txzserver_events_published_total") - published)
        cluster.start_broker()
        # the broker carries again (alpha's and beta's heartbeats, a second apart, arrive);
        # gamma's PUB socket reconnects as fast; gamma's next periodic heartbeat is a minute off
        heard = metric(beta, "txzserver_bus_heartbeats_total")
        wait_for(lambda: metric(beta, "txzserver_bus_heartbeats_total") >= heard + 4, 60,
                 what="heartbeats at beta")
        assert gaps(client) == []
        gamma.stop()
        wait_for(lambda: gaps(client), 30, what="the gap at beta's client")
        assert gaps(client) == [{"type": "gap", "instance": "gamma", "missed": lost}]
        assert "the final heartbeat of instance gamma counts" in beta.log_text()
    finally:
        client.stop()
