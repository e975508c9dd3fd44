"""Slow downloading clients on raw sockets, a timed GET, and an RSS sampler, for streaming tests."""

import socket
import threading
import time

import httpx


class SlowReader(threading.Thread):
    """GET ``path`` and read the body at about ``rate`` bytes/s until stopped.

    A small receive buffer makes the server feel the slowness (TCP backpressure) instead
    of the kernel buffering megabytes for us. ``stop()`` also shuts the socket down, so a
    reader still waiting for a starved server's answer ends too. With ``ssl_context`` the
    request goes over TLS (HTTP/1.1), e.g. through the TLS front.
    """

    def __init__(self, port, path, rate=1_000_000, chunk=16384, auth_header=None, timeout=30,
                 ssl_context=None, host="localhost"):
        super().__init__(daemon=True)
        self.port, self.path, self.rate, self.chunk = port, path, rate, chunk
        self.auth_header = auth_header
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.host = host
        self.received = 0
        self.status = None
        self.error = None
        self.started_body = threading.Event()
        self._stop_event = threading.Event()
        self._sock = None

    def run(self):
        try:
            with self._connect() as sock:
                self._sock = sock
                if self._stop_event.is_set():
                    return
                extra = f"Authorization: {self.auth_header}\r\n" if self.auth_header else ""
                sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n{extra}\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    data = sock.recv(4096)
                    if not data:
                        raise ConnectionError("closed before the response head")
                    head += data
                self.status = int(head.split(b" ", 2)[1])
                self.received = len(head.split(b"\r\n\r\n", 1)[1])
                self.started_body.set()
                begin = time.monotonic()
                while not self._stop_event.is_set():
                    data = sock.recv(self.chunk)
                    if not data:
                        break
                    self.received += len(data)
                    ahead = self.received / self.rate - (time.monotonic() - begin)
                    if ahead > 0:
                        self._stop_event.wait(ahead)
        except Exception as exc:  # reported by the test
            if not self._stop_event.is_set():
                self.error = exc
            self.started_body.set()

    def _connect(self):
        sock = socket.socket()
        sock.settimeout(self.timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before connect: it sizes the window
        sock.connect(("127.0.0.1", self.port))
        if self.ssl_context is not None:
            return self.ssl_context.wrap_socket(sock, server_hostname="localhost")
        return sock

    def stop(self):
        self._stop_event.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def timed_get(url, timeout=10.0, **kwargs):
    """(seconds, status) of one GET on a new connection; status None on timeout."""
    begin = time.monotonic()
    try:
        response = httpx.get(url, timeout=timeout, **kwargs)
        return time.monotonic() - begin, response.status_code
    except httpx.TimeoutException:
        return time.monotonic() - begin, None


class RssSampler(threading.Thread):
    """The peak RSS of a process, read from /proc every ``interval`` seconds until stopped.

    It sleeps between samples: a sampler in a tight loop would load the machine it measures.
    Use as a context manager; ``peak`` is the largest sample (the first is taken at once).
    """

    def __init__(self, read_rss, interval=0.2):
        super().__init__(daemon=True)
        self.read_rss, self.interval = read_rss, interval
        self.samples = [read_rss()]
        self.error = None
        self._stop_event = threading.Event()

    @property
    def peak(self):
        return max(self.samples)

    def run(self):
        try:
            while not self._stop_event.wait(self.interval):
                self.samples.append(self.read_rss())
        except Exception as exc:  # reported by stop(), in the test's thread
            self.error = exc

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        """Stop sampling (one last sample) and raise what made the sampler fail, if anything."""
        self._stop_event.set()
        self.join(10)
        if self.error is not None:
            raise AssertionError(f"the RSS sampler failed: {self.error!r}") from self.error
        self.samples.append(self.read_rss())
