"""The loopback limit of the download rows: the File sent by a blocking server of a few lines.

No HTTP parsing, no framework, one client at a time: the same h2load client fetches the
blob file of the site (answered with a fixed head) from a thread of the benchmark, sent with
``os.sendfile`` or with ``read()`` and ``sendall()`` of 256 KB buffers. On loopback the client's
copy out of the socket is most of the cost, and it reads page-cache pages (sendfile) more
slowly than data a sender has just written: the two rows say what the machine allows each way.
"""

import os
import socket
import threading
from pathlib import Path

from tests.bench.clients import download

MODES = ("sendfile", "read+write")
BUFFER = 256 * 1024


def blob_path(instance):
    """The largest committed blob of an instance folder (the site's File)."""
    blobs = Path(instance, "var", "blobstorage").rglob("*.blob")
    return max(blobs, key=lambda path: path.stat().st_size)


class CeilingServer:
    """Answers every request on 127.0.0.1:``port`` with the whole file, then closes."""

    def __init__(self, path, mode):
        self.path, self.mode = Path(path), mode
        self.size = self.path.stat().st_size
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            with conn:
                try:
                    self._answer(conn)
                except OSError:
                    pass

    def _answer(self, conn):
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % self.size)
        with open(self.path, "rb", buffering=0) as f:
            if self.mode == "sendfile":
                offset = 0
                while offset < self.size:
                    offset += os.sendfile(conn.fileno(), f.fileno(), offset, self.size - offset)
            else:
                while data := f.read(BUFFER):
                    conn.sendall(data)

    def close(self):
        self.listener.close()


def measure(instance, downloads):
    """{mode: {"gb_per_s": [...]}}: ``downloads`` fetches per mode, alternating, after one
    not counted each."""
    servers = {mode: CeilingServer(blob_path(instance), mode) for mode in MODES}
    try:
        urls = {mode: f"http://127.0.0.1:{server.port}/" for mode, server in servers.items()}
        for url in urls.values():
            download(url, ["--h1"])
        found = {mode: {"gb_per_s": []} for mode in MODES}
        for _ in range(downloads):
            for mode, url in urls.items():
                seconds, size = download(url, ["--h1"])
                found[mode]["gb_per_s"].append(round(size / seconds / 1e9, 3))
        return found
    finally:
        for server in servers.values():
            server.close()
