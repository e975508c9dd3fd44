"""Server behaviour with a real Plone site: shutdown, HTTP/2 timeouts, proxies, reactors."""

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.server import free_port, wait_for
from tests.support.slow import SlowReader

MB = 1024 * 1024


@pytest.fixture(scope="module")
def options_server(servers):
    """One server for the options that do not interfere: a trusted proxy, the WebDAV source
    port and a 2 s idle timeout (a start each would cost a Zope process each)."""
    port = free_port()
    server = servers.start("options", extra=(
        "trusted-proxy 127.0.0.1\nidle-timeout 2s\n"
        f"<webdav-source-server>\n  address 127.0.0.1:{port}\n</webdav-source-server>"))
    assert server.ports["webdav-source"] == port
    return server


def _connect_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_lets_a_download_finish_then_exits_0(servers, big_file):
    server = servers.start("drain", extra="shutdown-timeout 60s")
    reader = SlowReader(server.port, big_file["path"] + "/@@download/file", rate=40 * MB)
    reader.start()
    wait_for(lambda: reader.received > MB or reader.error, 30, what="download to start")
    begin = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: _connect_refused(server.port), 5, what="listener to close")
    assert server.wait_exit(60) == 0
    reader.join(10)
    print(f"drained a download in {time.monotonic() - begin:.1f} s")
    assert reader.error is None
    assert reader.received == big_file["size"], "the in-flight download was cut"
    assert "ZODB closed" in server.log_text()


def test_shutdown_timeout_bounds_the_wait(servers, big_file):
    """SIGINT with a 1 MB/s download in flight: stopped about shutdown-timeout later. The
    server starts with SIGINT ignored, as a background job of a non-interactive shell
    inherits it (a `make test` launched that way): it is a stop signal all the same."""
    server = servers.start("drain-bounded", extra="shutdown-timeout 2s", sigint_ignored=True)
    reader = SlowReader(server.port, big_file["path"] + "/@@download/file", rate=MB)
    reader.start()
    wait_for(lambda: reader.received > MB or reader.error, 30, what="download to start")
    begin = time.monotonic()
    server.process.send_signal(signal.SIGINT)
    assert server.wait_exit(30) == 0
    elapsed = time.monotonic() - begin
    reader.stop()
    print(f"stopped {elapsed:.1f} s after SIGINT with a 1 MB/s download in flight")
    assert 1.5 < elapsed < 10
    assert "still in flight" in server.log_text()
    assert "SIGINT was ignored when the server started" in server.log_text()


def test_shutdown_delay_serves_new_connections_while_ready_fails(servers):
    """shutdown-delay 3s: on SIGTERM /healthz/ready fails at once, the listener keeps
    accepting (a new connection is answered) for 3 s, then closes, and the process exits 0."""
    server = servers.start("delayed-stop", with_site=False, extra=(
        "shutdown-delay 3s\n<health-server>\n  address 127.0.0.1:0\n</health-server>"))
    ready = f"http://127.0.0.1:{server.ports['health']}/healthz/ready"
    wait_for(lambda: httpx.get(ready, timeout=10).status_code == 200, 60, what="ready")
    assert httpx.get(server.url("/"), timeout=30).status_code < 500  # Zope warmed up
    begin = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(ready, timeout=5).status_code == 503, 5, 0.05, "ready to fail")
    answered = httpx.get(server.url("/"), timeout=5)  # a new connection, during the delay
    answered_after = time.monotonic() - begin
    assert answered.status_code < 500 and answered_after < 3
    wait_for(lambda: _connect_refused(server.port), 30, 0.05, "listener to close")
    closed_after = time.monotonic() - begin
    assert closed_after >= 2.9, f"the listener closed {closed_after:.2f} s after SIGTERM"
    assert server.wait_exit(60) == 0
    assert "serving 3.0s more while readiness fails" in server.log_text()
    print(f"answered {answered_after:.2f} s after SIGTERM, closed after {closed_after:.2f} s")


def test_idle_server_stops_promptly(servers):
    server = servers.start("idle-stop")
    begin = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - begin < 5


def test_http2_slow_reader_is_not_cut_by_idle_timeout(options_server, big_file):
    server = options_server
    received = 0
    begin = time.monotonic()
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        with client.stream("GET", server.url(big_file["path"] + "/@@download/file")) as response:
            assert response.http_version == "HTTP/2"
            for chunk in response.iter_bytes(65536):
                received += len(chunk)
                time.sleep(0.05)  # about 1.3 MB/s
                if time.monotonic() - begin > 7:
                    break
    assert received > 5 * MB, f"only {received} bytes arrived in 7 s"
    # An idle HTTP/2 connection is still closed after the timeout.
    from tests.support.h2client import idle_h2_connection_closed_after
    assert idle_h2_connection_closed_after(server.port, 6)


def test_virtual_host_monster_urls(plone_server, site_id):
    response = httpx.get(plone_server.url(
        f"/VirtualHostBase/https/www.example.org:443/{site_id}/VirtualHostRoot/"), timeout=60)
    assert response.status_code == 200
    assert 'href="https://www.example.org/' in response.text
    assert f"127.0.0.1:{plone_server.port}" not in response.text


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.org",
             "X-Forwarded-For": "203.0.113.9"}


def test_forwarded_headers_ignored_from_untrusted_peer(plone_server, site_id):
    response = httpx.get(plone_server.url(f"/{site_id}"), headers=FORWARDED, timeout=60)
    assert response.status_code == 200
    assert "www.example.org" not in response.text
    assert f"http://127.0.0.1:{plone_server.port}/{site_id}" in response.text


def test_forwarded_headers_honoured_from_trusted_proxy(options_server, site_id):
    server = options_server
    response = httpx.get(server.url(f"/{site_id}"), headers=FORWARDED, timeout=60)
    assert response.status_code == 200
    assert f"https://www.example.org/{site_id}" in response.text
    access_log = server.instance / "log" / "access.log"
    # access lines are written in batches, within AccessLog's interval
    wait_for(lambda: f"GET /{site_id} HTTP/1.1\" 200" in access_log.read_text(), 10,
             what="the access line")


def test_default_reactor_serves_http11_and_h2c(servers, site_id):
    server = servers.start("epoll", extra="reactor default")
    assert "reactor: EPollReactor" in server.log_text()
    assert httpx.get(server.url(f"/{site_id}"), timeout=60).status_code == 200
    with httpx.Client(http1=False, http2=True, timeout=60) as client:
        response = client.get(server.url(f"/{site_id}"))
    assert response.status_code == 200 and response.http_version == "HTTP/2"


def test_uvloop_is_used_when_available(plone_server):
    assert "reactor: uvloop" in plone_server.log_text()


def test_python_switch_interval_is_left_alone_unless_set(plone_server):
    assert "Python switch interval: 5 ms (Python's default)" in plone_server.log_text()


def test_python_switch_interval_set_in_zope_conf(servers, site_id):
    """The key reaches the interpreter of a real server (its log reads the interval back from
    sys.getswitchinterval), and pages rendered on both threads at once are answered."""
    server = servers.start("switch-interval", threads=2, extra="python-switch-interval 20ms")
    assert "Python switch interval: 20 ms\n" in server.log_text()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: httpx.get(server.url(f"/{site_id}"), timeout=60).status_code,
                                 range(8)))
    assert statuses == [200] * 8


def test_webdav_source_port_returns_template_source(options_server, admin_auth):
    server = options_server
    port = server.ports["webdav-source"]
    source = b'<p tal:content="string:rendered">source</p>'
    put = httpx.put(server.url("/srctest"), content=source, auth=admin_auth,
                    headers={"Content-Type": "text/html"}, timeout=60)
    assert put.status_code in (201, 204), put.text
    rendered = httpx.get(server.url("/srctest"), auth=admin_auth, timeout=60)
    assert "<p>rendered</p>" in rendered.text
    raw = httpx.get(f"http://127.0.0.1:{port}/srctest", auth=admin_auth, timeout=60)
    assert raw.status_code == 200
    assert 'tal:content="string:rendered"' in raw.text


def test_access_log_combined_format(plone_server, site_id):
    httpx.get(plone_server.url(f"/{site_id}"), headers={"User-Agent": "txz-test-agent",
                                                        "Referer": "http://ref.example/"}, timeout=60)
    access_log = plone_server.instance / "log" / "access.log"
    lines = wait_for(lambda: [entry for entry in access_log.read_text().splitlines()
                              if "txz-test-agent" in entry], 10, what="the access line")
    line = lines[-1]
    assert line.startswith("127.0.0.1 - ")
    assert f'"GET /{site_id} HTTP/1.1" 200 ' in line
    assert line.endswith('"http://ref.example/" "txz-test-agent"')
