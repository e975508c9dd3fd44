"""HTTP/2 Rapid Reset through the TLS front (docs/security.md, row rapid_reset_front).

One client sends up to 5,000 HEADERS + RST_STREAM pairs for the front page over h2/TLS, bounded
to about 10 s. A page probe in a process of its own (tests/support/latency.PageProbe: the attack
encodes thousands of frames in this process, and a probe sharing its interpreter would measure
that) asks for the page on a new connection each time, before, during and right after the attack:
every page answers 200 and their p95 stays within the row's ratio of the p95 before the attack,
none above its starvation ceiling. The front (config/haproxy.cfg) limits the streams of one
connection, queues requests to each instance behind `maxconn` and answers 429 to a connection
above its request rate; its access log shows how many of the attack's requests passed it.
"""

import selectors
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from tests.robustness import ROWS
from tests.support.latency import PageProbe
from tests.support.results import record

from .conftest import CA
from .frontlog import front_log_since, outcomes

FIGURES = ROWS["rapid_reset_front"].figures
PAIRS = FIGURES["pairs"]
PACE_SECONDS = 6  # 5,000 pairs in 6 s: an attacker's pace, far above the front's 500 per 10 s
ATTACK_SECONDS = 10  # the bound when the front reads slower than that
PAGE = "/Plone"
ATTACK_MARK = "rapid-reset"  # in the query string of the attack's requests: the front logs it
# config/haproxy.cfg: requests per 10 s on one connection before 429 ("per-connection")
CONNECTION_BUDGET = FIGURES["budget"]


class RapidReset(threading.Thread):
    """HEADERS + RST_STREAM(CANCEL) pairs on one h2/TLS connection (ALPN h2), as fast as the
    front reads them, until ``pairs`` were sent or ``seconds`` passed.

    TLS runs on memory BIOs over a non-blocking socket, so one thread reads what the front
    sends (SETTINGS, GOAWAY, 429s) while it writes, and the time bound holds even when the
    front stops reading (TCP backpressure). Afterwards ``probe()`` asks for the page on the
    same connection.
    """

    def __init__(self, port, pairs=PAIRS, seconds=ATTACK_SECONDS):
        super().__init__(daemon=True)
        self.port, self.pairs, self.seconds = port, pairs, seconds
        self.sent = 0
        self.statuses = {}
        self.resets_received = 0
        self.goaway = None
        self.elapsed = None
        self.error = None
        self.started = threading.Event()
        context = ssl.create_default_context(cafile=str(CA))
        context.set_alpn_protocols(["h2"])
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")
        self._sock = socket.create_connection(("localhost", port))
        self._sock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ)
        self._out = bytearray()
        self._closed = False
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self._headers = [(":method", "GET"), (":scheme", "https"), (":authority", f"localhost:{port}"),
                         (":path", f"{PAGE}?{ATTACK_MARK}=1")]

    # -- TLS over memory BIOs and a non-blocking socket

    def _handshake(self, deadline):
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("the TLS handshake with the front did not end within the attack's time")
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush_tls()
                self._pump(deadline, until=lambda: self._incoming.pending)
        assert self._tls.selected_alpn_protocol() == "h2"
        self._flush_tls()

    def _flush_tls(self):
        self._out += self._outgoing.read()

    def _pump(self, deadline, until=lambda: False, timeout=0.05):
        """Send what is queued, read what arrived, feed it to h2; until ``until()`` or deadline."""
        while not self._closed and time.monotonic() < deadline:
            if self._out:
                try:
                    sent = self._sock.send(self._out)
                    del self._out[:sent]
                except BlockingIOError:
                    pass
            events = self._selector.select(timeout)
            for _key, mask in events:
                if mask & selectors.EVENT_READ:
                    self._receive()
            mode = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._out else 0)
            if not self._closed:
                self._selector.modify(self._sock, mode)
            if until():
                return

    def _receive(self):
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except ConnectionError:
            data = b""
        if not data:
            self._closed = True
            return
        self._incoming.write(data)
        if not self.started.is_set():
            return  # still in the handshake: do_handshake() reads it
        while True:
            try:
                plain = self._tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not plain:
                break
            try:
                events = self.conn.receive_data(plain)
            except h2.exceptions.ProtocolError:
                self._closed = True
                return
            for event in events:
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                elif isinstance(event, h2.events.StreamReset):
                    self.resets_received += 1
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = event.error_code
                elif isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self._write_h2()

    def _write_h2(self):
        data = self.conn.data_to_send()
        if data:
            self._tls.write(data)
            self._flush_tls()

    # -- the attack

    def run(self):
        try:
            start = time.monotonic()
            deadline = start + self.seconds
            self._handshake(deadline)
            self.conn.initiate_connection()
            self.started.set()
            self._write_h2()
            while self.sent < self.pairs and time.monotonic() < deadline and not self._closed:
                if self.goaway is not None:
                    break
                # a batch when it is due and the previous one has left (the front's pace when it
                # reads slower than ours, not our buffer's)
                due = self.pairs * (time.monotonic() - start) / PACE_SECONDS
                if len(self._out) < 16384 and self.sent < due:
                    for _ in range(min(50, self.pairs - self.sent)):
                        stream_id = self.conn.get_next_available_stream_id()
                        self.conn.send_headers(stream_id, self._headers, end_stream=True)
                        self.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
                        self.sent += 1
                    self._write_h2()
                self._pump(deadline, timeout=0.001, until=lambda: len(self._out) < 16384)
            self.elapsed = time.monotonic() - start
        except Exception as exc:  # reported by the test
            self.error = exc

    def probe(self, timeout=5):
        """One GET of the page on the attacking connection: its status, or None when the front
        closed the connection (GOAWAY) or did not answer in time."""
        if self._closed or self.goaway is not None:
            return None
        before = dict(self.statuses)
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, self._headers, end_stream=True)
        self._write_h2()
        self._pump(time.monotonic() + timeout, until=lambda: self.statuses != before)
        new = {s: n - before.get(s, 0) for s, n in self.statuses.items() if n != before.get(s, 0)}
        return next(iter(new), None)

    def close(self):
        self._selector.close()
        self._sock.close()


def attack_outcome(since, sent, timeout=15):
    """(reached an instance, got 429, ended in the front) for the attack's requests, from the
    front's log; waits until it has logged all ``sent`` of them (it logs a stream when it ends)."""
    deadline = time.monotonic() + timeout
    while True:
        reached, denied, front = outcomes(front_log_since(since), ATTACK_MARK)
        if reached + denied + front >= sent or time.monotonic() > deadline:
            return reached, denied, front
        time.sleep(0.5)  # one `docker logs` at a time, not a loop of them



def test_rapid_reset_does_not_delay_pages_on_other_connections(port, base_url):
    judged = {"ratio": FIGURES["ratio"], "floor": FIGURES["floor"], "ceiling": FIGURES["ceiling"]}
    with PageProbe(f"{base_url}{PAGE}", verify=CA) as probe:
        probe.baseline(20, timeout=300)  # 21 pages: a minute or more on a busy machine
        since = str(int(time.time()) - 1)
        attack = RapidReset(port)
        attack_start = probe.mark()
        attack.start()
        try:
            attack.join(ATTACK_SECONDS + 30)
            assert not attack.is_alive(), "the attack did not end within its time bound"
            assert attack.error is None, repr(attack.error)
            attack_end = probe.mark()
            # right after the attack: the probe's next pages, then the attacking connection itself
            probe.wait_samples(5, after=attack_end)
            after_end = probe.mark()
            on_attacking_connection = attack.probe()
        finally:
            attack.close()
        during = probe.verdict("during the attack", attack_start, attack_end, **judged)
        after = probe.verdict("right after the attack", attack_end, after_end, min_samples=5, **judged)
    reached, denied, front = attack_outcome(since, attack.sent)
    figures = record("smoke_rapid_reset", "rapid_reset_front", pairs_sent=attack.sent,
                     attack_seconds=round(attack.elapsed or 0, 2), front_statuses=attack.statuses,
                     reached_an_instance=reached, got_429=denied, ended_in_the_front=front,
                     during=during.figures(), after=after.figures(),
                     on_attacking_connection=on_attacking_connection)
    print(f"\nrapid reset through the front: {figures}")
    assert attack.sent >= FIGURES["min_sent"], f"only {attack.sent} pairs sent: the attack did not happen"
    during.check()
    after.check()
    # the attacking connection: answered (200 or 429 above its rate) or closed by the front
    assert on_attacking_connection in (200, 429, None)
    # the front let at most one connection's budget through its rate limit and denied the rest
    assert reached + front <= CONNECTION_BUDGET + 1, (reached, denied, front)
    assert denied >= attack.sent - CONNECTION_BUDGET - 1, (reached, denied, front)
