"""The bus's authentication against real processes: `txzserver broker` on loopback tcp with
CURVE keys made by `txzserver buskeys`, a Plone server connected with its own key, and
strangers (plain ZeroMQ sockets) on the broker's ports: they receive nothing of the server's
events and what they send reaches no WebSocket client (the server counts only what allowed
peers sent; the broker counts the refusals). `txzserver broker` and `txzserver serve` refuse
an ipc directory open to others or of another user with exit 2 and the reason on stderr.
"""

import json
import os
import subprocess

import httpx
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from tests.robustness import ROWS
from tests.support.instance import (TXZSERVER, copy_instance_data, http_server,
                                    new_instance)
from tests.support.restapi import api
from tests.support.server import ServerProcess, free_port, wait_for
from tests.support.wsclient import Collector
from txzserver.bus import Event
from txzserver.bus.security import ClientSecurity

CURVE = ROWS["bus_curve"].figures
IPC = ROWS["bus_ipc_dir"].figures
METRICS = "/internal/prom"


def metric(url, name, **labels):
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    return sum(sample.value for family in text_string_to_metric_families(answer.text)
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


@pytest.fixture(scope="module")
def curve_bus(tmp_path_factory, plone_template):
    """Keys for the broker, the server ("alpha") and the test ("gamma"), the broker on tcp
    with CURVE, and a Plone server on it."""
    directory = tmp_path_factory.mktemp("curve-bus")
    keys, allowed = directory / "keys", directory / "allowed"
    for name in ("broker", "alpha", "gamma"):
        subprocess.run([TXZSERVER, "buskeys", str(keys), name], check=True, capture_output=True)
    allowed.mkdir()
    for name in ("alpha", "gamma"):
        os.link(keys / f"{name}.key", allowed / f"{name}.key")
    ports = {name: free_port() for name in ("publish", "subscribe", "metrics")}
    bus = {name: f"tcp://127.0.0.1:{ports[name]}" for name in ("publish", "subscribe")}
    log = open(directory / "broker.log", "ab")
    broker = subprocess.Popen(
        [TXZSERVER, "broker", "--frontend", bus["publish"], "--backend", bus["subscribe"],
         "--no-tasks", "--curve-secret-key", str(keys / "broker.key_secret"), "--curve-allow",
         str(allowed), "--metrics", f"127.0.0.1:{ports['metrics']}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = None
    try:
        broker_metrics = f"http://127.0.0.1:{ports['metrics']}/metrics"

        def broker_up():
            assert broker.poll() is None, (directory / "broker.log").read_text()
            try:
                return httpx.get(broker_metrics, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(broker_up, 30, 0.1, "the broker's metrics")
        extra = (f"server-threads 2\ninstance-name alpha\n<websocket>\n  path /ws\n  site Plone\n"
                 f"</websocket>\n<event-bus>\n  publish {bus['publish']}\n  subscribe"
                 f" {bus['subscribe']}\n  server-key {keys / 'broker.key'}\n  client-key"
                 f" {keys / 'alpha.key_secret'}\n</event-bus>\n"
                 f"<metrics-server>\n  address 127.0.0.1:0\n  path {METRICS}/\n</metrics-server>\n")
        conf = new_instance(directory / "alpha", http_server(0), extra)
        copy_instance_data(plone_template["directory"], directory / "alpha")
        server = ServerProcess(conf).start()
        yield {"server": server, "bus": bus, "keys": keys, "broker_metrics": broker_metrics}
    finally:
        if server is not None:
            server.stop()
        broker.terminate()
        broker.wait(30)
        log.close()


def test_strangers_on_the_brokers_ports_read_nothing_and_inject_nothing(curve_bus):
    server, bus = curve_bus["server"], curve_bus["bus"]
    ctx = zmq.Context.instance()
    gamma = ClientSecurity.load(str(curve_bus["keys"] / "broker.key"),
                                str(curve_bus["keys"] / "gamma.key_secret"))
    allowed_pub = gamma.socket(ctx, zmq.PUB, bus["publish"])
    allowed_sub = gamma.socket(ctx, zmq.SUB, bus["subscribe"])
    stranger_pub, stranger_sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    sockets = (allowed_pub, allowed_sub, stranger_pub, stranger_sub)
    for sock in (allowed_sub, stranger_sub):
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(bus["subscribe"])
    for sock in (allowed_pub, stranger_pub):
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(bus["publish"])
    anonymous = Collector(server.url("/Plone/ws").replace("http://", "ws://"), {},
                          name="anonymous").start_and_wait()
    received = server.url(METRICS, kind="metrics")

    def notification(path):
        return Event("notification", path, title="Manager for all", guard={"Anonymous"}).to_wire()

    try:
        before = metric(received, "txzserver_events_received_total")
        # an allowed key works end to end: the marker reaches the server's WebSocket client
        wait_for(lambda: allowed_pub.send(notification("/Plone/marker-1"))
                 or anonymous.events(path="/Plone/marker-1"), 20, 0.2, "the first marker")
        markers = metric(received, "txzserver_events_received_total") - before
        for _ in range(CURVE["injected"]):
            stranger_pub.send(notification("/Plone/forged"))
        # the server's own event, made by Plone, crosses the broker to the allowed subscriber
        api(server, "POST", "/Plone", json={"@type": "Document", "id": "curve-doc",
                                            "title": "Over CURVE"})
        wait_for(lambda: allowed_sub.poll(200) and b"/Plone/curve-doc" in allowed_sub.recv(), 30,
                 0.1, "the server's event at the allowed subscriber")
        allowed_pub.send(notification("/Plone/marker-2"))
        anonymous.wait_for_event(path="/Plone/marker-2")
        assert anonymous.events(path="/Plone/forged") == []
        assert not stranger_sub.poll(500), "a stranger received a bus message"
        # what the server received: the markers it had to retry, the document's events, marker-2;
        # never a forged one
        after = metric(received, "txzserver_events_received_total") - before
        assert after >= markers + 2
        refused = metric(curve_bus["broker_metrics"], "txzserver_bus_refused_peers_total")
        assert refused >= 2  # the stranger's PUB and SUB, each at least once
        assert metric(curve_bus["broker_metrics"], "txzserver_bus_refused_peers_total",
                      endpoint=bus["publish"]) >= 1
    finally:
        anonymous.stop()
        for sock in sockets:
            sock.close(linger=0)
    shown = {m.get("path") for m in anonymous.messages if "Manager for all" in json.dumps(m)}
    assert shown == {"/Plone/marker-1", "/Plone/marker-2"}  # the allowed peer's only


def test_tcp_without_keys_refuses_to_start(tmp_path):
    conf = new_instance(tmp_path / "open", http_server(0),
                        "<event-bus>\n  publish tcp://127.0.0.1:1\n  subscribe tcp://127.0.0.1:2\n"
                        "</event-bus>\n")
    done = subprocess.run([TXZSERVER, "serve", str(conf)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "needs server-key and client-key" in done.stderr and "curve off" in done.stderr


@pytest.mark.parametrize("unsafe", ["wide", "other-owner"])
def test_broker_and_serve_refuse_an_unsafe_ipc_directory(tmp_path, unsafe):
    bus = tmp_path / "bus"
    bus.mkdir(mode=0o700)
    if unsafe == "wide":
        os.chmod(bus, 0o777)
        reason = "has mode 0777"
    else:
        os.chown(bus, os.geteuid() + 1, -1)  # the tests run as root on the CI machine
        reason = "belongs to uid"
    publish, subscribe = f"ipc://{bus}/publish.sock", f"ipc://{bus}/subscribe.sock"
    broker = subprocess.run([TXZSERVER, "broker", "--frontend", publish, "--backend", subscribe,
                             "--no-tasks"], capture_output=True, text=True, timeout=60)
    assert broker.returncode == IPC["status"], broker.stderr
    assert str(bus) in broker.stderr and reason in broker.stderr
    conf = new_instance(tmp_path / "instance", http_server(0),
                        f"<event-bus>\n  publish {publish}\n  subscribe {subscribe}\n</event-bus>\n")
    serve = subprocess.run([TXZSERVER, "serve", str(conf)], capture_output=True, text=True,
                           timeout=120)
    assert serve.returncode == IPC["status"], serve.stderr
    assert str(bus) in serve.stderr and reason in serve.stderr
    assert "txzserver ready" not in serve.stderr  # refused before Zope started
    assert os.listdir(bus) == []
