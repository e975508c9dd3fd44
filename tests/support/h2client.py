"""A minimal HTTP/2 client on a raw socket (the h2 library), for timeout checks."""

import socket
import time

import h2.config
import h2.connection
import h2.events

from tests.support.clients import read_head


def idle_h2_connection_closed_after(port, seconds):
    """Open an h2c connection, send nothing more; True if the server closes it in time."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.5)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return True
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    return True
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
    return False


def h2c_upgrade_get(port, path, host="localhost", timeout=30):
    """GET ``path`` with "Upgrade: h2c" (RFC 7540 3.2); return (first line, status, headers, body).

    After the 101 the response to the upgraded request arrives on HTTP/2 stream 1.
    """
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = conn.initiate_upgrade_connection()
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               f"Upgrade: h2c\r\nHTTP2-Settings: {settings.decode('ascii')}\r\n\r\n").encode()
    status, headers, body = None, {}, b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        head, rest = read_head(sock, "the upgrade answer")
        first_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if not first_line.startswith("HTTP/1.1 101"):
            return first_line, None, {}, rest
        sock.sendall(conn.data_to_send())  # our preface and SETTINGS
        ended = False
        while not ended:
            for event in conn.receive_data(rest):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == 1:
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                    status = int(headers[":status"])
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == 1:
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == 1:
                    ended = True
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
            if not ended:
                rest = sock.recv(65536)
                if not rest:
                    raise ConnectionError("closed before stream 1 ended")
    return first_line, status, headers, body
