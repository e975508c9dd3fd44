"""Hostile XML in WebDAV bodies: external entities and entity expansion in PROPFIND, PROPPATCH
and LOCK read no file, reach no network, and are refused with 400 at the DTD (Zope's protected
parser forbids one; txzserver turns the LOCK's ValueError into 400, it was 500); malformed XML
is answered 400; a Destination on a foreign host 502. Against a real server, whose front page
is fetched from a process of its own all along (tests/support/latency.py) and judged against the
pages taken before the first test.
"""

import socket
import threading
import time

import httpx
import pytest

from tests.robustness import ROWS
from tests.support.latency import PageProbe
from tests.support.results import record

ENTITIES = ROWS["dav_xml_entities"].figures
MALFORMED = ROWS["dav_malformed"].figures

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


@pytest.fixture(scope="module")
def probe(dav, site_id):
    """The front page from a process of its own; the baseline is taken before any test."""
    with PageProbe(dav.url(f"/{site_id}")) as probe:
        probe.baseline(20)
        yield probe


def pages_served(probe, phase, start, test):
    """The pages that started since ``start`` were all 200 and not starved (see latency.py)."""
    verdict = probe.verdict(phase, start)
    record("test_webdav_hostile", test, **verdict.figures())
    verdict.check()


def _request(dav, method, body, auth, depth=None, timeout=30):
    headers = {"Content-Type": "text/xml"}
    if depth is not None:
        headers["Depth"] = depth
    return httpx.request(method, dav.url("/hostile/"), content=body, headers=headers, auth=auth,
                         timeout=timeout)


@pytest.mark.parametrize("method, depth", [("PROPFIND", "0"), ("PROPPATCH", None), ("LOCK", "0")])
def test_external_file_entity_is_not_read(dav, probe, admin_auth, tmp_path, method, depth):
    start = probe.mark()
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
    response = _request(dav, method, body, admin_auth, depth)
    assert SECRET not in response.text
    # Zope's parser forbids a DTD (PROPFIND, PROPPATCH: BadRequest; LOCK: txzserver's 400)
    assert response.status_code == ENTITIES["refused"], (response.status_code, response.text[:300])
    assert "Lock-Token" not in response.headers
    # nothing of the file was stored either, and the folder is not locked
    listing = httpx.request("PROPFIND", dav.url("/hostile/"), headers={"Depth": "0"},
                            auth=admin_auth, timeout=10)
    assert listing.status_code == 207
    assert SECRET not in listing.text and "activelock" not in listing.text
    pages_served(probe, f"during an XXE {method}", start, f"file_entity_{method}")


def test_external_network_entity_is_not_fetched(dav, probe, admin_auth):
    start = probe.mark()
    listener = Listener()
    try:
        response = _request(dav, "PROPPATCH", _xxe_network(listener.port), admin_auth)
        time.sleep(0.5)  # a fetch would have connected by now
        assert listener.connections == 0
        assert response.status_code == ENTITIES["refused"], (response.status_code, response.text[:300])
    finally:
        listener.close()
    pages_served(probe, "during an XXE PROPPATCH", start, "network_entity")


#: A DTD with one harmless entity: refused at the DTD like the billion laughs, so the two cost
#: the same unless the laughs are expanded (10**9 "lol"s: minutes of CPU and 3 GB).
ONE_ENTITY = ('<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY lol "lol">]>\n'
              '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol;</D:displayname></D:prop>'
              "</D:propfind>")


def test_entity_expansion_is_refused_before_it_expands(dav, probe, admin_auth):
    """Answer times are compared with those of a one-entity DTD on the same server (a wall
    clock bound would measure the machine), the same way the page probe judges pages."""
    start = probe.mark()
    rss_before = dav.rss()

    def seconds(body):
        began = time.monotonic()
        response = _request(dav, "PROPFIND", body, admin_auth, depth="0")
        assert response.status_code == ENTITIES["refused"], (response.status_code, response.text[:300])
        assert "lollollol" not in response.text
        return time.monotonic() - began

    tries = ENTITIES["tries"]
    plain = [seconds(ONE_ENTITY) for _ in range(tries)]
    laughs = [seconds(BILLION_LAUGHS) for _ in range(tries)]
    limit = max(ENTITIES["floor"], ENTITIES["ratio"] * max(plain))
    grown = dav.rss() - rss_before
    record("test_webdav_hostile", "entity_expansion", one_entity_max_s=round(max(plain), 4),
           laughs_max_s=round(max(laughs), 4), limit_s=round(limit, 4), rss_growth=grown)
    assert max(laughs) <= limit, f"billion laughs {laughs} s against one entity {plain} s"
    # an expansion would take gigabytes; a refused body leaves the server as it was
    assert grown < ENTITIES["rss_mib"] * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB"
    pages_served(probe, "during the billion laughs", start, "entity_expansion_pages")


@pytest.mark.parametrize("body", [b"<D:propfind xmlns:D='DAV:'><D:prop>", b"\x00\x01not xml",
                                  b"<?xml version='1.0'?><a><b></a>"])
def test_malformed_xml_gets_400(dav, admin_auth, body):
    response = _request(dav, "PROPFIND", body, admin_auth, depth="0")
    assert response.status_code == MALFORMED["malformed"]


def test_destination_on_a_foreign_host_is_refused(dav, admin_auth):
    assert httpx.put(dav.url("/hostile/doc.txt"), content=b"x", auth=admin_auth).status_code == 201
    for method in ("COPY", "MOVE"):
        response = httpx.request(method, dav.url("/hostile/doc.txt"), auth=admin_auth,
                                 headers={"Destination": "http://evil.example.org/hostile/stolen.txt"})
        # RFC 4918 9.8.4/9.9.4: the destination is on another server (txzserver's davpatches)
        assert response.status_code == MALFORMED["foreign"], (method, response.status_code)
        assert "evil.example.org" in response.text
    assert httpx.get(dav.url("/hostile/doc.txt"), auth=admin_auth).status_code == 200
    assert httpx.get(dav.url("/hostile/stolen.txt"), auth=admin_auth).status_code == 404
