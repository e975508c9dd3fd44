"""`txzserver listen --durable NAME` against a real nats-server: the real command in a
subprocess, events published on the stream by a NatsBus in this process (as an instance
publishes them).
"""

import json
import os
import selectors
import signal
import subprocess
import time

import pytest

from txzserver.bus import Event
from txzserver.listen import GAP_STATUS

from tests.support.instance import TXZSERVER
from tests.support.natsbus import public_events, publishing
from tests.support.server import free_port, wait_for


@pytest.fixture
def publisher(nats):
    with publishing([nats.url], "publisher") as node:
        yield node


class Listener:
    """`txzserver listen --durable ...` reading its stdout lines in the test's thread."""

    def __init__(self, *args):
        self.process = subprocess.Popen([TXZSERVER, "listen", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._partial = b""
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def welcome(self, timeout=30):
        err = selectors.DefaultSelector()
        err.register(self.process.stderr, selectors.EVENT_READ)
        assert err.select(timeout), "listen --durable printed no welcome"
        line = self.process.stderr.readline()
        assert json.loads(line)["type"] == "welcome", line
        return self

    def read(self, count, timeout=120):
        """The lines printed so far, once ``count`` are there (or at the deadline, or EOF).
        Read from the pipe's descriptor: a text file's buffer would hide lines from select."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while len(self.lines) < count and time.monotonic() < deadline:
            if not self.selector.select(0.2):
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            self._partial += data
            *complete, self._partial = self._partial.split(b"\n")
            self.lines.extend(json.loads(line) for line in complete)
        return self.lines

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(30)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def listeners():
    made = []

    def start(*args):
        made.append(Listener(*args))
        return made[-1]

    yield start
    for listener in made:
        listener.close()


def paths(lines, prefix):
    return [line["path"] for line in lines if line.get("path", "").startswith(f"/Plone/{prefix}/")]


def test_a_stopped_builder_gets_every_missed_event_once_in_order_then_live_ones(
        nats, publisher, listeners):
    first = listeners("--durable", "builder", "--nats-server", nats.url).welcome()
    publisher.bus.publish(public_events("live0", 1))
    assert paths(first.read(1), "live0") == ["/Plone/live0/0"]
    assert first.stop() == 0  # SIGTERM: a clean stop

    publisher.bus.publish(public_events("missed", 1000))
    wait_for(lambda: publisher.bus.published == 1001, 60, what="1,000 events on the stream")

    again = listeners("--durable", "builder", "--nats-server", nats.url,
                      "--count", "1001").welcome()
    lines = again.read(1000)
    assert paths(lines, "missed") == [f"/Plone/missed/{n}" for n in range(1000)]
    publisher.bus.publish(public_events("live1", 1))
    lines = again.read(1001)
    assert again.process.wait(30) == 0  # --count reached
    assert len(lines) == 1001
    assert paths(lines, "live1") == ["/Plone/live1/0"]
    assert [line["seq"] for line in lines] == sorted({line["seq"] for line in lines})
    assert all("guard" not in line and "instance" not in line for line in lines)
    assert not any(line["type"] == "gap" for line in lines)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_running_builder_across_a_nats_restart_gets_every_event_once(
        nats, publisher, listeners, how):
    builder = listeners("--durable", "builder", "--nats-server", nats.url,
                        "--count", "600").welcome()
    publisher.bus.publish(public_events("across", 300))
    wait_for(lambda: publisher.bus.published == 300, 60, what="published")
    getattr(nats, how)()
    publisher.bus.publish(public_events("across", 300, start=300))  # queued in the bus
    nats.start()
    lines = builder.read(600)
    assert builder.process.wait(30) == 0
    assert paths(lines, "across") == [f"/Plone/across/{n}" for n in range(600)]
    assert not any(line["type"] == "gap" for line in lines)


def test_since_a_sequence_or_a_time_replays_from_there(nats, publisher, listeners):
    publisher.bus.publish(public_events("old", 5))
    wait_for(lambda: publisher.bus.published == 5, 30, what="published")
    middle = time.time()
    time.sleep(0.2)
    publisher.bus.publish(public_events("new", 3))
    wait_for(lambda: publisher.bus.published == 8, 30, what="published")

    by_seq = listeners("--durable", "b1", "--nats-server", nats.url, "--since", "4",
                       "--count", "5").welcome()
    lines = by_seq.read(5)
    assert by_seq.process.wait(30) == 0
    assert [line["seq"] for line in lines] == [4, 5, 6, 7, 8]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(middle)) + f".{int(middle % 1 * 1e6):06d}Z"
    by_time = listeners("--durable", "b2", "--nats-server", nats.url, "--since", since,
                        "--count", "3").welcome()
    assert paths(by_time.read(3), "new") == ["/Plone/new/0", "/Plone/new/1", "/Plone/new/2"]
    assert by_time.process.wait(30) == 0


def test_private_events_only_with_all_events_and_path_filter(nats, publisher, listeners):
    private = Event("created", "/Plone/private/doc", guard={"Manager"}, actor="jane",
                    actor_guard={"Authenticated"})
    public = Event("created", "/Plone/public/doc", guard={"Anonymous"}, actor="jane",
                   actor_guard={"Authenticated"})
    elsewhere = Event("created", "/Plone/publicity/x", guard={"Anonymous"})
    publisher.bus.publish([private, public, elsewhere])
    wait_for(lambda: publisher.bus.published == 3, 30, what="published")
    anonymous = listeners("--durable", "anon", "--nats-server", nats.url, "--since", "1",
                          "--count", "2").welcome()
    assert [(line["path"], line["actor"]) for line in anonymous.read(2)] == [
        ("/Plone/public/doc", ""), ("/Plone/publicity/x", "")]
    everything = listeners("--durable", "all", "--nats-server", nats.url, "--since", "1",
                           "--all-events", "--path", "/Plone/public", "--count", "1").welcome()
    assert [(line["path"], line["actor"]) for line in everything.read(1)] == [
        ("/Plone/public/doc", "jane")]
    everything2 = listeners("--durable", "all2", "--nats-server", nats.url, "--since", "1",
                            "--all-events", "--count", "2").welcome()
    assert [line["path"] for line in everything2.read(2)] == [
        "/Plone/private/doc", "/Plone/public/doc"]


def test_retention_loss_is_a_gap_and_fail_on_gap_exits_with_its_status(nats, listeners):
    with publishing([nats.url], "publisher", stream="SMALL", max_bytes=64 * 1024) as node:
        node.bus.publish(public_events("gone", 1000))
        wait_for(lambda: node.bus.published == 1000, 60, what="published")
        gapped = listeners("--durable", "late", "--nats-server", nats.url, "--stream",
                           "SMALL", "--since", "1", "--fail-on-gap").welcome()
        assert gapped.process.wait(30) == GAP_STATUS
        [gap] = gapped.read(1)
        assert gap["type"] == "gap" and gap["missed"] == gap["seq"] - 1 > 0


@pytest.mark.parametrize("args, message", [
    (["--durable", "x"], "--durable needs an <event-bus> with backend nats"),
    (["--durable", "x", "--nats-server", "http://a:1"], "must be a nats:// or tls:// URL"),
    (["--durable", "x", "--nats-server", "nats://127.0.0.1:1", "--since", "yesterday"],
     "--since must be a stream sequence or an ISO time"),
    (["ws://127.0.0.1:1/ws", "--since", "3"], "--since is for --durable"),
])
def test_misuse_is_a_clear_error(args, message):
    result = subprocess.run([TXZSERVER, "listen", *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_nats_unreachable_is_a_clear_error():
    url = f"nats://127.0.0.1:{free_port()}"
    result = subprocess.run([TXZSERVER, "listen", "--durable", "x", "--nats-server", url],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cannot reach NATS at {url}" in result.stderr


def test_no_stream_yet_is_a_clear_error(nats):
    result = subprocess.run([TXZSERVER, "listen", "--durable", "x", "--nats-server", nats.url],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no stream TXZSERVER_EVENTS on NATS" in result.stderr


def test_config_file_gives_the_bus(nats, publisher, listeners, tmp_path):
    from txzserver.zope.instance import render_config
    for sub in ("etc", "var", "log"):
        (tmp_path / sub).mkdir()
    conf = tmp_path / "etc" / "zope.conf"
    conf.write_text(render_config(str(tmp_path))
                    + f"<event-bus>\n  backend nats\n  nats-server {nats.url}\n</event-bus>\n")
    listener = listeners("--durable", "fromconf", "--config", str(conf), "--count", "1").welcome()
    publisher.bus.publish(public_events("conf", 1))
    assert paths(listener.read(1), "conf") == ["/Plone/conf/0"]
    assert listener.process.wait(30) == 0
