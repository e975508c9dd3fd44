"""Hostile XML in WebDAV bodies (issue 11): external entities and entity expansion in PROPFIND,
PROPPATCH and LOCK read no file, reach no network, and cost bounded CPU and memory; malformed
XML is answered 400; a Destination on a foreign host is refused. Against a real server.
"""

import socket
import threading
import time

import httpx
import pytest

SECRET = "txzserver-xxe-canary-7f3a"

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
              for i in range(1, 10))
    + ']>\n<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol9;</D:displayname></D:prop>'
    "</D:propfind>")


def _xxe_file(path):
    return (f'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{path}">]>\n'
            '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&xxe;</D:displayname></D:prop>'
            "</D:propfind>")


def _xxe_network(port):
    return (f'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/x">]>\n'
            '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:note>&xxe;</D:note></D:prop>'
            "</D:set></D:propertyupdate>")


class Listener:
    """A TCP socket on loopback that records whether anybody connected (the XXE fetch)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def dav(servers, admin_auth, site_id):
    server = servers.start("dav-hostile", threads=2)
    response = httpx.request("MKCOL", server.url("/hostile/"), auth=admin_auth)
    assert response.status_code == 201, response.text
    for _ in range(3):  # the first renderings of the front page compile its templates
        assert httpx.get(server.url(f"/{site_id}"), timeout=30).status_code == 200
    return server


def _page_ok(server, site_id):
    started = time.monotonic()
    response = httpx.get(server.url(f"/{site_id}"), timeout=5)
    return response.status_code == 200 and time.monotonic() - started < 1.0


@pytest.mark.parametrize("method, depth", [("PROPFIND", "0"), ("PROPPATCH", None), ("LOCK", "0")])
def test_external_file_entity_is_not_read(dav, admin_auth, site_id, tmp_path, method, depth):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    body = _xxe_file(secret)
    if method == "PROPPATCH":
        body = body.replace("propfind", "propertyupdate").replace(
            "<D:prop><D:displayname>&xxe;</D:displayname></D:prop>",
            "<D:set><D:prop><D:note>&xxe;</D:note></D:prop></D:set>")
    elif method == "LOCK":
        body = body.replace("propfind", "lockinfo").replace(
            "<D:prop><D:displayname>&xxe;</D:displayname></D:prop>",
            "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
            "<D:owner>&xxe;</D:owner>")
    headers = {"Content-Type": "text/xml"}
    if depth is not None:
        headers["Depth"] = depth
    response = httpx.request(method, dav.url("/hostile/"), content=body, headers=headers,
                             auth=admin_auth, timeout=10)
    assert SECRET not in response.text
    assert response.status_code in (200, 207, 400, 412, 423), (response.status_code, response.text[:300])
    if method == "LOCK" and response.status_code == 200:
        token = response.headers["Lock-Token"]
        httpx.request("UNLOCK", dav.url("/hostile/"), headers={"Lock-Token": token}, auth=admin_auth)
    # nothing of the file was stored either
    listing = httpx.request("PROPFIND", dav.url("/hostile/"), headers={"Depth": "0"},
                            auth=admin_auth, timeout=10)
    assert SECRET not in listing.text
    assert _page_ok(dav, site_id)


def test_external_network_entity_is_not_fetched(dav, admin_auth, site_id):
    listener = Listener()
    try:
        response = httpx.request("PROPPATCH", dav.url("/hostile/"), content=_xxe_network(listener.port),
                                 headers={"Content-Type": "text/xml"}, auth=admin_auth, timeout=10)
        time.sleep(0.5)  # a fetch would have connected by now
        assert listener.connections == 0
        assert response.status_code in (200, 207, 400)
    finally:
        listener.close()
    assert _page_ok(dav, site_id)


def test_entity_expansion_is_bounded(dav, admin_auth, site_id):
    rss_before = dav.rss()
    started = time.monotonic()
    response = httpx.request("PROPFIND", dav.url("/hostile/"), content=BILLION_LAUGHS,
                             headers={"Content-Type": "text/xml", "Depth": "0"}, auth=admin_auth,
                             timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code in (207, 400)
    assert "lollollol" not in response.text
    assert elapsed < 2.0
    assert dav.rss() - rss_before < 50 * 1024 * 1024
    assert _page_ok(dav, site_id)


@pytest.mark.parametrize("body", [b"<D:propfind xmlns:D='DAV:'><D:prop>", b"\x00\x01not xml",
                                  b"<?xml version='1.0'?><a><b></a>"])
def test_malformed_xml_gets_400(dav, admin_auth, body):
    response = httpx.request("PROPFIND", dav.url("/hostile/"), content=body,
                             headers={"Content-Type": "text/xml", "Depth": "0"}, auth=admin_auth)
    assert response.status_code == 400


def test_destination_on_a_foreign_host_is_refused(dav, admin_auth):
    assert httpx.put(dav.url("/hostile/doc.txt"), content=b"x", auth=admin_auth).status_code in (201, 204)
    for method in ("COPY", "MOVE"):
        response = httpx.request(method, dav.url("/hostile/doc.txt"), auth=admin_auth,
                                 headers={"Destination": "http://evil.example.org/hostile/stolen.txt"})
        assert response.status_code in (400, 403, 502), (method, response.status_code)
    assert httpx.get(dav.url("/hostile/doc.txt"), auth=admin_auth).status_code == 200
    assert httpx.get(dav.url("/hostile/stolen.txt"), auth=admin_auth).status_code == 404
