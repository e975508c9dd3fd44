"""Connections the peer resets at any moment, on the uvloop reactor, directly and through
Debian's real HAProxy (``option abortonclose``; ``http-server-close`` and pooled keep-alive
with ``http-reuse always``): a request reset before the server read it, a slow request whose
client goes away, a blob download cancelled mid-file (os.sendfile) or not read at all
(backpressure), pipelined requests behind a download, an h2c stream, a request over TLS, the
health listener; with either HTTP/1.1 parser. None may log an error or a traceback,
and every connection's slot is given back (the connections gauge drains back once the
clients and HAProxy are gone); the server answers normally afterwards.

A request and the reset right behind it, both there before the reactor read the socket,
is what HAProxy sends when its client goes away as it forwards the request. uvloop used to
close its watcher of such a socket after handing Twisted the request: the response's first
write raised ``RuntimeError: unable to perform operation on <UVPoll closed=True>`` (logged
CRITICAL, "sending the response to ... failed") and the connection kept its slot for good.
"""

import socket
import ssl
import struct
import time

import h2.connection
import httpx
import pytest

from tests.support import haproxy
from tests.support.instance import (
    BIG_FILE_ID, SITE_ID, copy_instance_data, http_server, https_server, new_instance,
    with_task_views,
)
from tests.support.server import ServerProcess, wait_for

SLOW = "/@@test-task-slow?seconds={seconds}&name=reset"
DOWNLOAD = f"/{SITE_ID}/{BIG_FILE_ID}/@@download/file"
CONF = """server-threads 2
reactor uvloop
<metrics-server>
  address 127.0.0.1:0
</metrics-server>
<health-server>
  address 127.0.0.1:0
</health-server>
"""
#: Seconds between a client's request and its reset: before the server can have read it, while
#: HAProxy forwards it, while it is published.
DELAYS = (0, 0.0005, 0.001, 0.002, 0.005, 0.02, 0.2)


@pytest.fixture(scope="module", params=["llhttp", "twisted"])
def server(request, tmp_path_factory, plone_template, tls_files):
    """Our own server (its gauge and log are nobody else's), with the test views, a TLS
    listener beside the cleartext one, and each HTTP/1.1 parser."""
    directory = tmp_path_factory.mktemp("peer-reset")
    listeners = http_server(0) + "\n" + https_server(0, tls_files["cert"], tls_files["key"])
    conf = new_instance(directory, listeners, f"{CONF}http1-parser {request.param}\n")
    copy_instance_data(plone_template["directory"], directory)
    process = ServerProcess(conf, env=with_task_views(conf)).start()
    try:
        assert "reactor: uvloop" in process.log_text()
        yield process
    finally:
        process.stop()


FRONT = """global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    option abortonclose
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
frontend close
    bind 127.0.0.1:{close}
    option http-server-close
    default_backend instance
frontend keepalive
    bind 127.0.0.1:{keepalive}
    default_backend pooled
backend instance
    option httpchk
    http-check send meth GET uri /healthz/ready ver HTTP/1.1 hdr Host localhost
    server s1 127.0.0.1:{port} check port {health} inter 100ms
backend pooled
    http-reuse always
    server s1 127.0.0.1:{port}
"""


@pytest.fixture
def front(server, tmp_path):
    """HAProxy before the server (health checks every 100 ms), stopped after the test: the
    connections it kept to the server close with it."""
    def write_config(ports):
        path = tmp_path / "haproxy.cfg"
        path.write_text(FRONT.format(port=server.port, health=server.ports["health"], **ports))
        return path

    process, ports = haproxy.start(write_config, None, tmp_path / "haproxy.log",
                                   names=("close", "keepalive"), listen="close")
    try:
        yield ports
    finally:
        haproxy.stop(process)


@pytest.fixture
def clean(server):
    """After the test (and its HAProxy): nothing logged at ERROR or above, no traceback, every
    connection's slot given back, and the server still answers. The gauge is compared with
    its value before the test, so that each test answers for its own connections only."""
    offset = server.event_log.stat().st_size
    before = open_connections(server)
    yield
    try:
        wait_for(lambda: open_connections(server) <= before, 20)
    except TimeoutError:
        pass  # the log says why, if it can: read first
    with server.event_log.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    bad = [line for line in text.splitlines()
           if " CRITICAL " in line or " ERROR " in line or line.startswith("Traceback")]
    assert not bad, text[-6000:]
    assert open_connections(server) <= before, "connections kept their slots"
    assert httpx.get(server.url(SLOW.format(seconds=0)), timeout=30).text == "slept"


def open_connections(server):
    """txzserver_http_connections summed over the protocols."""
    text = httpx.get(server.url("/metrics", kind="metrics"), timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("txzserver_http_connections{"))


def reset(sock):
    """Close with RST (SO_LINGER 0), as HAProxy aborts a server connection."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def get(path):
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def send_and_reset(port, data, delay=0, read=0, receive_buffer=None):
    """Connect to ``port``, send ``data``, read ``read`` bytes, wait ``delay`` s, reset."""
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(data)
    got = 0
    while got < read:
        piece = sock.recv(min(1 << 16, read - got))
        assert piece, "closed before the bytes expected"
        got += len(piece)
    if delay:
        time.sleep(delay)
    reset(sock)


def test_request_reset_before_the_server_read_it(server, clean):
    """Request and reset both there when the reactor first reads the socket."""
    for _ in range(10):
        send_and_reset(server.port, get(SLOW.format(seconds=0.2)))
    time.sleep(1)  # the requests are published and answered for nobody


@pytest.mark.parametrize("frontend", ["close", "keepalive"])
def test_client_gone_while_haproxy_forwards_or_the_server_publishes(server, clean, front,
                                                                     frontend):
    for delay in DELAYS:
        for _ in range(3):
            send_and_reset(front[frontend], get(SLOW.format(seconds=0.3)), delay)
    time.sleep(1)


@pytest.mark.parametrize("frontend", ["close", "keepalive"])
def test_download_cancelled_mid_file_through_haproxy(server, clean, front, frontend):
    """Cleartext HTTP/1.1 to the server: the File goes out with os.sendfile."""
    for read in (1, 64 * 1024, 4 << 20):
        send_and_reset(front[frontend], get(DOWNLOAD), read=read)
    send_and_reset(front[frontend], get(DOWNLOAD), delay=0.001)


def test_download_reset_while_the_server_waits_to_write(server, clean):
    """A client that reads nothing: the socket is full, sendfile waits for it (backpressure),
    and the reset comes then; one reset with the request; one with a second request
    pipelined behind the download, so that the channel reads nothing more while sendfile
    runs, and sendfile alone hears of the reset (that connection used to stay open)."""
    send_and_reset(server.port, get(DOWNLOAD), read=1, delay=0.5, receive_buffer=4096)
    send_and_reset(server.port, get(DOWNLOAD))
    send_and_reset(server.port, get(DOWNLOAD) + get(DOWNLOAD), read=1)


def h2c_request(path):
    """The h2c preface (prior knowledge), SETTINGS and one GET on stream 1."""
    connection = h2.connection.H2Connection()
    connection.initiate_connection()
    connection.send_headers(1, [(":method", "GET"), (":scheme", "http"),
                                (":authority", "localhost"), (":path", path)], end_stream=True)
    return connection.data_to_send()


@pytest.mark.parametrize("delay", [0, 0.1])
def test_h2c_connection_reset_with_a_stream_open(server, clean, delay):
    send_and_reset(server.port, h2c_request(SLOW.format(seconds=0.2)), delay)
    send_and_reset(server.port, h2c_request(DOWNLOAD), delay)
    send_and_reset(server.port, h2c_request(DOWNLOAD), read=32 * 1024)  # in the first window
    time.sleep(0.5)


def test_health_probe_reset(server, clean):
    for delay in (0, 0.01):
        send_and_reset(server.ports["health"], get("/healthz/ready"), delay)


def test_tls_request_reset_after_the_handshake(server, clean):
    """Over TLS the request comes after the handshake, and the reset right behind it."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    for path in (SLOW.format(seconds=0.2), DOWNLOAD):
        for _ in range(3):
            raw = socket.create_connection(("127.0.0.1", server.ports["https"]), timeout=30)
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(get(path))
                reset(sock)
    time.sleep(0.5)
