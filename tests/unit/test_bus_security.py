"""txzserver.bus.security on real ZeroMQ sockets: a CURVE broker on loopback tcp lets in the
allowed client keys only (a plain socket or an unknown key reads nothing and injects nothing,
and is counted), a message above max-message-size is never delivered, an ipc directory of
another user or open to others is refused; received messages out of schema or with a sequence
jump no publisher makes are dropped and counted."""

import os
import socket
import threading
import time

import pytest
import zmq
import zmq.auth
from twisted.internet.testing import MemoryReactorClock

from tests.robustness import ROWS
from txzserver.bus import Event
from txzserver.bus.broker import run_broker
from txzserver.bus.publishers import ZmqBus
from txzserver.bus.security import (BrokerGuard, BusLimits, BusSecurityError, ClientSecurity,
                                    secure_ipc_dir)
from txzserver.cli import main
from txzserver.websocket.fanout import Hub, Sequences, Subscriber

from .zmqbroker import DEADLINE, poll_readable, short_dir, wait_for

CURVE = ROWS["bus_curve"].figures
OVERSIZE = ROWS["bus_oversize"].figures
SCHEMA = ROWS["bus_schema"].figures


def free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


@pytest.fixture
def keys(tmp_path):
    """Broker and instance key pairs made by `txzserver buskeys`, and a stranger's pair."""
    directory = tmp_path / "keys"
    for name in ("broker", "alpha", "beta"):
        assert main(["buskeys", str(directory), name]) == 0
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    zmq.auth.create_certificates(str(stranger), "eve")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for name in ("alpha", "beta"):
        os.link(directory / f"{name}.key", allowed / f"{name}.key")
    return {"dir": directory, "allowed": allowed, "stranger": stranger / "eve.key_secret"}


class TcpBroker:
    """run_broker on loopback tcp in a thread, CURVE on, with its own context (its ZAP
    handler binds the context's one ZAP endpoint)."""

    def __init__(self, keys, limits=BusLimits()):
        self.ctx = zmq.Context()
        self.guard = BrokerGuard.load(self.ctx, limits, str(keys["dir"] / "broker.key_secret"),
                                      str(keys["allowed"]))
        ports = free_ports(4)
        self.frontend, self.backend, self.tasks_in, self.tasks_out = (
            f"tcp://127.0.0.1:{port}" for port in ports)
        self.ready, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(
            target=run_broker, args=(self.frontend, self.backend, self.ready, self.stop),
            kwargs={"tasks": (self.tasks_in, self.tasks_out), "guard": self.guard}, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(DEADLINE), "broker did not bind"
        return self

    def __exit__(self, *exc):
        self.stop.set()
        # the broker closes its sockets as it stops; term() waits for every socket of the
        # context, so with the thread still running it would hang until pytest's timeout
        self.thread.join(DEADLINE * 6)
        assert not self.thread.is_alive(), f"the broker thread did not stop within {DEADLINE * 6} s"
        self.ctx.term()


def client(keys, name, limits=BusLimits()):
    return ClientSecurity.load(str(keys["dir"] / "broker.key"),
                               str(keys["dir"] / f"{name}.key_secret"), limits)


class Instance:
    def __init__(self, broker, security, name):
        self.hub = Hub()
        self.got = []
        self.hub.add(Subscriber({"Anonymous"}, ["/"], self.got.append))
        self.bus = ZmqBus(MemoryReactorClock(), self.hub, broker.frontend, broker.backend,
                          instance=name, security=security)

    def pump(self):
        poll_readable([self.bus.sub], 10)
        self.bus.doRead()

    def paths(self):
        import json
        return [json.loads(data).get("path") for data in self.got]


def test_buskeys_writes_a_public_and_a_private_certificate(keys):
    public, secret = zmq.auth.load_certificate(str(keys["dir"] / "alpha.key_secret"))
    assert zmq.auth.load_certificate(str(keys["dir"] / "alpha.key")) == (public, None)
    assert os.stat(keys["dir"] / "alpha.key_secret").st_mode & 0o777 == 0o600


def test_allowed_keys_pass_and_strangers_read_and_inject_nothing(keys):
    ctx = zmq.Context.instance()
    with TcpBroker(keys) as broker:
        alpha, beta = (Instance(broker, client(keys, name), name) for name in ("alpha", "beta"))
        # no CURVE at all (a plain ZeroMQ socket), and CURVE with a key outside the allow-list
        plain_sub, plain_pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
        eve = ClientSecurity.load(str(keys["dir"] / "broker.key"), str(keys["stranger"]))
        eve_sub = eve.socket(ctx, zmq.SUB, broker.backend)
        eve_pub = eve.socket(ctx, zmq.PUB, broker.frontend)
        plain_push = ctx.socket(zmq.PUSH)
        plain_pull = ctx.socket(zmq.PULL)
        strangers = (plain_sub, plain_pub, eve_sub, eve_pub, plain_push, plain_pull)
        try:
            for sub in (plain_sub, eve_sub):
                sub.setsockopt(zmq.SUBSCRIBE, b"")
                sub.connect(broker.backend)
            for pub in (plain_pub, eve_pub):
                pub.connect(broker.frontend)
            plain_push.connect(broker.tasks_in)
            plain_pull.connect(broker.tasks_out)
            forged = Event("notification", "/Plone/forged", title="Manager for all",
                           guard={"Anonymous"}).to_wire()
            for _ in range(CURVE["injected"]):
                for pub in (plain_pub, eve_pub):
                    pub.send(forged)
                plain_push.send(b'{"queue":"default","userid":"admin"}', zmq.NOBLOCK)
            # an allowed key works end to end: alpha's event reaches beta's subscriber
            wait_for(lambda: "/Plone/real" in beta.paths(), lambda: (
                alpha.bus.publish([Event("created", "/Plone/real", guard={"Anonymous"})]),
                beta.pump()), what="alpha's event at beta")
            refused = lambda: {reason for (_, reason) in broker.guard.refused}  # noqa: E731
            wait_for(lambda: refused() == {"handshake", "key-not-allowed"}
                     and broker.guard.refused_total() >= CURVE["strangers"],
                     lambda: time.sleep(0.05), what="every stranger refused")
            for _ in range(CURVE["injected"]):  # what was sent meanwhile has had its chance
                forged_again = [pub.send(forged) for pub in (plain_pub, eve_pub)]
            assert forged_again
            alpha.bus.publish([Event("created", "/Plone/last", guard={"Anonymous"})])
            wait_for(lambda: "/Plone/last" in beta.paths(), beta.pump, what="alpha's last event")
            assert "/Plone/forged" not in beta.paths() and beta.bus.invalid == 0
            for sock in (plain_sub, eve_sub, plain_pull):
                assert not sock.poll(200), "a stranger received a bus message"
            endpoints = {endpoint for (endpoint, _) in broker.guard.refused}
            assert {broker.frontend, broker.backend} <= endpoints
        finally:
            for sock in strangers:
                sock.close(linger=0)
            alpha.bus.close()
            beta.bus.close()


def test_a_message_above_max_message_size_is_never_delivered(keys):
    limits = BusLimits(max_message_size=OVERSIZE["limit_kb"] * 1024)
    with TcpBroker(keys, limits) as broker:
        alpha, beta = (Instance(broker, client(keys, name, limits), name) for name in ("alpha", "beta"))
        try:
            wait_for(lambda: "/Plone/first" in beta.paths(), lambda: (
                alpha.bus.publish([Event("created", "/Plone/first", guard={"Anonymous"})]),
                beta.pump()), what="the first event")
            big = Event("created", "/Plone/big", title="x" * (OVERSIZE["size_kb"] * 1024),
                        guard={"Anonymous"})
            alpha.bus.publish([big])
            # the broker dropped alpha's connection with the message; alpha reconnects by itself
            wait_for(lambda: "/Plone/after" in beta.paths(), lambda: (
                alpha.bus.publish([Event("created", "/Plone/after", guard={"Anonymous"})]),
                beta.pump()), what="an event after the big one")
            assert "/Plone/big" not in beta.paths()
            assert beta.hub.gaps >= 1  # its number was used: beta's clients were told of the loss
        finally:
            alpha.bus.close()
            beta.bus.close()


def test_every_bus_socket_has_the_limits(keys, tmp_path):
    limits = BusLimits(max_message_size=12345, high_water_mark=678)
    base, cleanup = short_dir(tmp_path)
    bus = ZmqBus(MemoryReactorClock(), Hub(), f"ipc://{base}/b/p.sock", f"ipc://{base}/b/s.sock",
                 security=ClientSecurity(limits))
    try:
        for sock in (bus.pub, bus.sub):
            assert sock.getsockopt(zmq.MAXMSGSIZE) == 12345
            assert (sock.getsockopt(zmq.SNDHWM), sock.getsockopt(zmq.RCVHWM)) == (678, 678)
    finally:
        bus.close()


# ipc: the directory is the only protection

def test_ipc_directory_is_made_private(tmp_path):
    secure_ipc_dir(f"ipc://{tmp_path}/new/bus/pub.sock")
    assert os.stat(tmp_path / "new" / "bus").st_mode & 0o777 == 0o700


def test_ipc_directory_open_to_others_is_refused(tmp_path):
    wide = tmp_path / "wide"
    wide.mkdir(mode=0o700)
    os.chmod(wide, 0o775)
    with pytest.raises(BusSecurityError, match="has mode 0775"):
        secure_ipc_dir(f"ipc://{wide}/pub.sock")


def test_ipc_directory_of_another_user_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, os.geteuid() + 1, -1)  # the tests run as root on the CI machine
    with pytest.raises(BusSecurityError, match="belongs to uid"):
        secure_ipc_dir(f"ipc://{theirs}/pub.sock")


@pytest.mark.parametrize("mode", [0o777, 0o750])
def test_broker_command_refuses_a_wide_ipc_directory_with_exit_2(tmp_path, capsys, mode):
    base, cleanup = short_dir(tmp_path)
    os.makedirs(f"{base}/bus", exist_ok=True)
    os.chmod(f"{base}/bus", mode)
    status = main(["broker", "--frontend", f"ipc://{base}/bus/p.sock", "--backend",
                   f"ipc://{base}/bus/s.sock", "--no-tasks"])
    assert status == ROWS["bus_ipc_dir"].figures["status"]
    assert f"has mode {mode:04o}" in capsys.readouterr().err
    assert not os.path.exists(f"{base}/bus/p.sock")


def test_broker_command_refuses_tcp_without_keys(capsys):
    frontend, backend = (f"tcp://127.0.0.1:{port}" for port in free_ports(2))
    assert main(["broker", "--frontend", frontend, "--backend", backend, "--no-tasks"]) == 2
    err = capsys.readouterr().err
    assert "--curve-secret-key and --curve-allow" in err and "--curve off" in err


# what is received is checked before it is used

def test_a_sequence_jump_no_publisher_makes_is_dropped_and_the_run_goes_on():
    now = [1000.0]
    hub = Hub()
    hub.sequences = Sequences(clock=lambda: now[0])
    got = []
    hub.add(Subscriber({"Anonymous"}, ["/"], got.append))

    def event(seq, path="/Plone/a"):
        return Event("created", path, guard={"Anonymous"}, instance="alpha", epoch="e1", seq=seq)

    assert hub.deliver(event(1)) == 1
    assert hub.deliver(event(1 + SCHEMA["jump"], "/Plone/forged")) == 0
    assert hub.jumps == 1
    assert hub.deliver(event(2)) == 1  # not taken for a duplicate: the forged number was not kept
    now[0] += 10  # ten seconds later, a publisher may have numbered (and lost) a million
    assert hub.deliver(event(2 + Sequences.MAX_RATE * 5)) == 1
    assert hub.jumps == 1
    import json
    assert [json.loads(m)["type"] for m in got] == ["created", "created", "gap", "created"]


def test_event_bus_over_tcp_needs_keys_or_curve_off(tmp_path, keys):
    from txzserver.config import ConfigError, load
    from .test_ws_config import conf

    for sub in ("etc", "var", "log"):
        (tmp_path / sub).mkdir()
    bus = "<event-bus>\n  publish tcp://broker:5559\n  subscribe tcp://broker:5560\n"
    path, _ = conf(tmp_path, bus + "</event-bus>\n")
    with pytest.raises(ConfigError, match="needs server-key and client-key"):
        load(path)
    path, _ = conf(tmp_path, bus + "  curve off\n</event-bus>\n")
    assert load(path)[1].event_bus.curve == "off"
    path, _ = conf(tmp_path, bus + f"  server-key {keys['dir']}/broker.key\n"
                   f"  client-key {keys['dir']}/alpha.key_secret\n  max-message-size 64KB\n"
                   "</event-bus>\n")
    settings = load(path)[1].event_bus
    assert settings.security().keys is not None and settings.max_message_size == 64 * 1024
    path, _ = conf(tmp_path, bus + f"  server-key {keys['dir']}/broker.key\n"
                   f"  client-key {keys['dir']}/alpha.key\n</event-bus>\n")
    with pytest.raises(ConfigError, match="holds no secret key"):
        load(path)


@pytest.mark.parametrize("data", [
    b'{"id": "1", "queue": "default", "path": "/Plone/@@x", "admin": true}',
    b'{"id": "1", "queue": "default", "path": "/Plone/@@x", "userid": ["admin"]}',
    b'{"id": 1, "queue": "default", "path": "/Plone/@@x"}',
    b'{"id": "1", "queue": "default", "path": "/Plone/@@x", "headers": [["a", 1]]}',
    b'{"id": "1", "queue": "default", "path": "/Plone/@@x", "params": [{"a": "b"}]}',
    b'{"id": "1", "queue": "default", "path": "/Plone/@@x", "payload": "not base64!"}',
])
def test_a_task_out_of_schema_is_refused(data):
    from txzserver.tasks.task import Task
    with pytest.raises((TypeError, ValueError)):
        Task.from_wire(data)
    assert Task.from_wire(b'{"id": "1", "queue": "default", "path": "/Plone/@@x",'
                          b' "params": [["n", 1]], "payload": "AAE="}').payload == b"\x00\x01"
