"""HTTP/2 Rapid Reset through the TLS front (issue "Hostile input").

One client sends 5,000 HEADERS + RST_STREAM pairs for the front page over h2/TLS, bounded to
about 10 s. Meanwhile and right after, a page request on a fresh connection answers 200 within
1 s: the front (config/haproxy.cfg) limits the streams of one connection, queues requests to
each instance behind `maxconn` and answers 429 to a connection above its request rate, so the
reset streams do not pile up in the instances. The attacking connection itself may get 429.
"""

import re
import selectors
import socket
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import httpx

from .conftest import CA, DOCKER, container

PAIRS = 5_000
PACE_SECONDS = 6  # as in the issue: 5,000 pairs in 6 s
ATTACK_SECONDS = 10  # the bound when the front reads slower than that
PAGE = "/Plone"
ATTACK_MARK = "rapid-reset"  # in the query string of the attack's requests: the front logs it
# config/haproxy.cfg: requests per 10 s on one connection before 429 ("per-connection")
CONNECTION_BUDGET = 500


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


def page_on_fresh_connection(base_url, ssl_context):
    """GET the page on a new h2 connection: (status or the error, seconds)."""
    start = time.monotonic()
    try:
        with httpx.Client(base_url=base_url, verify=ssl_context, http2=True, timeout=10) as fresh:
            status = fresh.get(PAGE).status_code
    except httpx.HTTPError as exc:
        status = repr(exc)
    return status, time.monotonic() - start


def front_log_since(since):
    """The front's access log lines (httplog) since the docker timestamp ``since``."""
    result = subprocess.run([DOCKER, "logs", "--since", since, container("front")],
                            capture_output=True, text=True, timeout=60)
    return (result.stdout + result.stderr).splitlines()


def attack_outcome(since, sent, timeout=15):
    """(reached an instance, got 429, ended in the front) for the attack's requests, from the
    front's log; waits until it has logged all ``sent`` of them (it logs a stream when it ends)."""
    deadline = time.monotonic() + timeout
    while True:
        reached = denied = front = 0
        for line in front_log_since(since):
            match = TIMERS.search(line)
            if not match or ATTACK_MARK not in line:
                continue
            if int(match.group(8)) == 429:
                denied += 1
            elif int(match.group(5)) >= 0:
                reached += 1
            else:
                front += 1
        if reached + denied + front >= sent or time.monotonic() > deadline:
            return reached, denied, front


# httplog: "... frontend backend/server TR/Tw/Tc/Tr/Ta status ...": Tc >= 0 means the request
# got a connection to an instance; -1 that it never left the front (denied, reset while queued)
TIMERS = re.compile(r" https~ (\S+)/(\S+) (-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/\+?(-?\d+) (-?\d+) ")


def test_rapid_reset_does_not_delay_pages_on_other_connections(port, base_url, ssl_context):
    assert page_on_fresh_connection(base_url, ssl_context)[0] == 200
    since = str(int(time.time()) - 1)
    attack = RapidReset(port)
    latencies, failures = [], []
    attack.start()
    try:
        assert attack.started.wait(10), attack.error
        while attack.is_alive():
            status, seconds = page_on_fresh_connection(base_url, ssl_context)
            latencies.append(seconds)
            if status != 200:
                failures.append(status)
            time.sleep(0.2)
        attack.join()
        # right after the attack: fresh connections, then the attacking connection itself
        after = [page_on_fresh_connection(base_url, ssl_context) for _ in range(5)]
        on_attacking_connection = attack.probe()
    finally:
        attack.close()
    reached, denied, front = attack_outcome(since, attack.sent)
    print(f"\nrapid reset: {attack.sent} HEADERS+RST_STREAM pairs in {attack.elapsed or 0:.1f} s "
          f"(front answered {attack.statuses}, {attack.resets_received} RST_STREAM, GOAWAY "
          f"{attack.goaway}); front log: {reached} requests reached an instance, {denied} got 429, "
          f"{front} ended in the front; page on fresh connections during the attack: "
          f"{len(latencies)} requests, max {max(latencies, default=0):.3f} s; after: "
          f"{[(s, round(t, 3)) for s, t in after]}; on the attacking connection: "
          f"{on_attacking_connection}")
    assert attack.error is None, repr(attack.error)
    assert attack.sent >= 1000, f"only {attack.sent} pairs sent: the attack did not happen"
    assert latencies and not failures, failures
    assert max(latencies) < 1.0, latencies
    assert all(status == 200 for status, _ in after), after
    assert max(seconds for _, seconds in after) < 1.0, after
    assert on_attacking_connection in (200, 429, None)
    # the front let at most one connection's budget through its rate limit and denied the rest
    assert reached + front <= CONNECTION_BUDGET + 1, (reached, denied, front)
    assert denied >= attack.sent - CONNECTION_BUDGET - 1, (reached, denied, front)
