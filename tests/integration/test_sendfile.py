"""Blob downloads over cleartext HTTP/1.1 go out with os.sendfile, bounded like any response.

One server of the module's own (one publisher thread, idle-timeout IDLE seconds, a TLS
listener beside the cleartext one) serves the template's 100 MB File. Raw sockets play the
clients: one that downloads the whole File and then asks again on the same connection, a
slow one, one that vanishes mid-file, one that stops reading. After each, no descriptor of
the server stays open on a blob file.
"""

import hashlib
import os
import socket
import ssl
import struct
import time
from pathlib import Path

import httpx
import pytest

from tests.robustness import ROWS
from tests.support.server import wait_for
from tests.support.slow import SlowReader, timed_get

IDLE = ROWS["stalled_download"].figures["idle"]  # the server's idle-timeout, seconds
RATE_MB = ROWS["stalled_download"].figures["rate_mb"]  # the slow reader's pace, MB/s
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(servers):
    return servers.start("sendfile", threads=1, extra=f"idle-timeout {IDLE}s\n", https=True)


@pytest.fixture(scope="module")
def download(big_file):
    return big_file["path"] + "/@@download/file"


@pytest.fixture(scope="module")
def source(plone_template):
    """The bytes the File was made of."""
    return (Path(plone_template["directory"]) / "big-source.bin").read_bytes()


def blob_descriptors(server):
    """Paths of the blob files the server process has open."""
    found = []
    for fd in Path(f"/proc/{server.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.endswith(".blob"):
            found.append(target)
    return found


def no_blob_open(server):
    wait_for(lambda: not blob_descriptors(server), 30, what="the server to close the blob file")


def connect(server, receive_buffer=None):
    sock = socket.socket()
    sock.settimeout(60)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", server.port))
    return sock


def get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


class Reader:
    """Responses read off one socket, in order."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed by the server")
        self.buffer += data

    def response(self):
        """(status, {header: value}, body) of the next response (Content-Length framed)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        digest, got = hashlib.sha256(), 0
        while got < length:
            if not self.buffer:
                self._fill()
            piece, self.buffer = self.buffer[:length - got], self.buffer[length - got:]
            digest.update(piece)
            got += len(piece)
        return int(lines[0].split()[1]), headers, digest.hexdigest()


def log_since(server, offset):
    return server.event_log.read_text(errors="replace")[offset:]


def test_download_then_more_requests_on_the_same_connection(server, download, big_file, source):
    """The whole File, byte for byte; a request pipelined behind it and a Range request after
    it are answered on the same connection (the channel has its transport back)."""
    with connect(server) as sock:
        sock.sendall(get(download) + get("/Plone/@@ok"))
        reader = Reader(sock)
        status, headers, digest = reader.response()
        assert status == 200 and int(headers["content-length"]) == big_file["size"]
        assert digest == big_file["sha256"]
        status, _, _ = reader.response()
        assert status == 200
        sock.sendall(get(download, "Range: bytes=1000000-3000000\r\n"))
        status, headers, digest = reader.response()
        assert status == 206 and headers["content-range"] == f"bytes 1000000-3000000/{big_file['size']}"
        assert digest == hashlib.sha256(source[1000000:3000001]).hexdigest()
    no_blob_open(server)
    access = server.instance / "log" / "access.log"  # lines are written in batches (AccessLog)
    wait_for(lambda: f'"GET {download} HTTP/1.1" 200 {big_file["size"]} ' in access.read_text(), 10,
             what="the access line with the bytes sent")


def test_tls_download_is_the_file(server, download, big_file):
    """Over TLS the bytes must pass through the TLS layer: read in buffers, same File."""
    digest = hashlib.sha256()
    with httpx.Client(verify=False, timeout=60) as client:
        with client.stream("GET", server.url(download, "https")) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                digest.update(chunk)
    assert digest.hexdigest() == big_file["sha256"]
    no_blob_open(server)


def test_slow_reader_is_served_past_idle_timeout_and_holds_no_thread(server, download):
    """A client reading at RATE_MB MB/s for longer than idle-timeout keeps its download (each byte
    taken starts the timeout again), and the one publisher thread answers pages meanwhile."""
    reader = SlowReader(server.port, download, rate=RATE_MB * MB)
    reader.start()
    try:
        assert reader.started_body.wait(60) and reader.status == 200, reader.error
        begin = time.monotonic()
        pages = []
        while time.monotonic() - begin < IDLE + 2:
            pages.append(timed_get(server.url("/Plone/@@ok"), timeout=60)[1])
            time.sleep(0.2)
        assert reader.is_alive() and reader.error is None
        assert set(pages) == {200}
        assert reader.received > (IDLE + 1) * RATE_MB * MB
    finally:
        reader.stop()
        reader.join(10)
    no_blob_open(server)


def test_client_vanishing_mid_file_closes_the_blob(server, download):
    offset = len(server.event_log.read_text(errors="replace"))
    with connect(server, receive_buffer=65536) as sock:
        sock.sendall(get(download))
        received = 0
        while received < 2 * MB:
            received += len(sock.recv(65536))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    no_blob_open(server)
    assert timed_get(server.url("/Plone/@@ok"), timeout=60)[1] == 200
    text = log_since(server, offset)
    assert "Traceback" not in text and "Unhandled" not in text, text


def read_until_cut(server, sock, download, offset, cut_errors):
    """Asks for the download, takes one receive buffer's worth, stops reading until the server
    logs the idle timeout, then reads what was in flight until the close; returns the bytes."""
    sock.sendall(get(download))
    received = len(sock.recv(65536))
    wait_for(lambda: f"took no byte of its response for {IDLE} seconds (idle-timeout)"
             in log_since(server, offset), 60, what="the idle-timeout log line")
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += len(data)
    except cut_errors:
        pass
    return received


def test_reader_that_stops_reading_is_cut_at_idle_timeout(server, download, big_file):
    """Twisted suspends the HTTP/1.1 idle timeout while a response is sent; the sendfile
    producer keeps one: IDLE seconds without a byte taken and the connection is aborted."""
    offset = len(server.event_log.read_text(errors="replace"))
    with connect(server, receive_buffer=65536) as sock:
        received = read_until_cut(server, sock, download, offset, ConnectionResetError)
    assert received < big_file["size"]
    no_blob_open(server)
    assert timed_get(server.url("/Plone/@@ok"), timeout=60)[1] == 200


def test_tls_reader_that_stops_reading_is_cut_at_idle_timeout(server, download, big_file):
    """Over TLS the body goes out in buffers, not with sendfile: the same idle-timeout holds."""
    offset = len(server.event_log.read_text(errors="replace"))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.socket()
    raw.settimeout(60)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    raw.connect(("127.0.0.1", server.ports["https"]))
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        received = read_until_cut(server, sock, download, offset, (ConnectionResetError, ssl.SSLError))
    assert received < big_file["size"]
    no_blob_open(server)
