"""Small socket-level clients for tests that send what ordinary HTTP clients refuse to send."""

import selectors
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events


def connect(port, host="127.0.0.1", timeout=10):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock, timeout=10, limit=1 << 20):
    """Everything the peer sends until it closes (or ``limit`` bytes, or ``timeout`` seconds).

    A reset after the data counts as a close: the data already received is returned.
    """
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"peer did not close within {timeout}s; got {bytes(data[:200])!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


def is_closed(sock, timeout=5):
    """True when the peer has closed ``sock`` (EOF or reset) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def exchange(port, data, timeout=10):
    """Send raw ``data`` on a new connection; return all bytes until the server closes."""
    with connect(port, timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def read_head(sock, what="the response head"):
    """Read from ``sock`` up to the end of an HTTP/1.1 head: (head, the bytes read after it).
    ConnectionError, naming ``what`` and the bytes so far, when the peer closes before."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {what}: {data[:300]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def parse_response(raw):
    """(status, headers dict with lower-case names, body) of one HTTP/1.1 response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    assert version.startswith("HTTP/1."), lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(status), headers, body


def abort(sock):
    """Close ``sock`` with a TCP reset (SO_LINGER 0), like a client that crashed."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def readable(sock, timeout=0.0):
    return bool(readable_among([sock], timeout))


def readable_among(socks, timeout=0.0):
    """The sockets of ``socks`` with something to read (or closed). A selector, not select():
    a test session holds more than 1,024 descriptors at times, which select() cannot take."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        return [key.fileobj for key, _ in selector.select(timeout)]


class H2Client:
    """A cleartext HTTP/2 client with prior knowledge, driven by hand with the h2 library."""

    def __init__(self, port, timeout=10):
        self.sock = connect(port, timeout=timeout)
        self.timeout = timeout
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request_headers(self, method, path, extra=(), end_stream=False):
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"),
                   (":authority", "127.0.0.1"), *extra]
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.flush()
        return stream_id

    def send_data(self, stream_id, data, end_stream=False):
        """Send as much of ``data`` as flow control allows now; return the bytes sent."""
        window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
        part = data[:window]
        self.conn.send_data(stream_id, part, end_stream=end_stream and len(part) == len(data))
        self.flush()
        return len(part)

    def events(self, timeout=None):
        """Events of the next bytes from the server; ConnectionError when it closed."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the HTTP/2 connection")
        events = self.conn.receive_data(data)
        self.flush()
        return events

    def response(self, stream_id, timeout=None):
        """(status, headers, body, events) of ``stream_id``, read until its stream ends."""
        deadline = time.monotonic() + (timeout or self.timeout)
        status, headers, body, seen = None, {}, bytearray(), []
        while time.monotonic() < deadline:
            events = self.events(max(deadline - time.monotonic(), 0.01))
            for event in events:
                seen.append(event)
                if getattr(event, "stream_id", None) != stream_id:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                    status = int(headers[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body.extend(event.data)
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    self.flush()
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status, headers, bytes(body), seen
        raise TimeoutError(f"stream {stream_id} did not end; events {seen}")

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except OSError:
            pass
        self.sock.close()
