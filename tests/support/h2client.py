"""A minimal HTTP/2 client on a raw socket (the h2 library), for timeout checks."""

import socket
import time

import h2.config
import h2.connection
import h2.events


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
