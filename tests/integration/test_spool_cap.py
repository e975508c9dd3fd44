"""The process's cap on spooled request bodies (max-spool-size) and the lower body limit of
requests without credentials (max-anonymous-body-size), against a real server: a body that
does not fit beside one held open gets 503 with Retry-After and a reason, an anonymous body
above its limit 413; neither reaches Zope (its IPubStart events, ``tests.support.published``),
and both fit once the held upload is done or credentials are given.
"""

import base64
import os
import socket
import time

import httpx
import pytest

from tests.robustness import ROWS
from tests.support.instance import ADMIN, ROOT, copy_instance_data, http_server, new_instance
from tests.support.published import SITE_ZCML, published
from tests.support.server import ServerProcess

KB = 1024
SPOOL = ROWS["spool_cap"].figures
ANONYMOUS = ROWS["anonymous_body"].figures
BASIC = "Basic " + base64.b64encode(":".join(ADMIN).encode()).decode()


@pytest.fixture(scope="module")
def capped_server(servers):
    directory = servers.tmp.mktemp("spool-cap")
    conf = new_instance(directory, http_server(0), "\n".join([
        "server-threads 2", "request-spool-threshold 64KB",
        f"max-spool-size {SPOOL['cap_kb']}KB",
        f"max-anonymous-body-size {ANONYMOUS['limit_kb']}KB"]))
    copy_instance_data(servers.template["directory"], directory)
    (directory / "etc" / "site.zcml").write_text(SITE_ZCML)
    server = ServerProcess(conf, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    servers.running.append(server)
    server.start()
    assert httpx.request("MKCOL", server.url("/capped/"), auth=ADMIN, timeout=60).status_code == 201
    return server


def _published(server, marker):
    return published(server.event_log.read_text(errors="replace"), marker)


def test_a_body_beyond_the_spool_cap_gets_503_with_retry_after(capped_server):
    held = SPOOL["held_kb"] * KB
    sock = socket.create_connection(("127.0.0.1", capped_server.port), timeout=60)
    try:
        # An upload that declares held_kb and sends a tenth of it: its share is taken at once.
        sock.sendall(f"PUT /capped/held.bin HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\n"
                     f"Content-Type: application/octet-stream\r\nContent-Length: {held}\r\n\r\n"
                     .encode() + b"h" * (held // 10))
        time.sleep(0.5)  # the server reads the head; nothing to wait on from outside
        body = b"s" * (SPOOL["second_kb"] * KB)
        refused = httpx.put(capped_server.url("/capped/second.bin"), content=body, auth=ADMIN,
                            timeout=60)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == str(SPOOL["retry_after"])
        assert f"({held} bytes spooled, max-spool-size {SPOOL['cap_kb'] * KB})" in refused.text
        assert (f"refused a request body of {len(body)} bytes: {held} of {SPOOL['cap_kb'] * KB}"
                " bytes are spooled already (max-spool-size)") in capped_server.log_text()
        # the held upload ends: 201, and its share is given back
        sock.sendall(b"h" * (held - held // 10))
        assert sock.recv(4096).split(b"\r\n", 1)[0] == b"HTTP/1.1 201 Created"
    finally:
        sock.close()
    again = httpx.put(capped_server.url("/capped/second.bin"), content=body, auth=ADMIN, timeout=60)
    assert again.status_code == 201, again.text
    # Zope published the second PUT once: the answer after the held upload, not the 503
    assert _published(capped_server, "/capped/second.bin") == 1


def test_an_anonymous_body_above_its_limit_gets_413(capped_server):
    body = b"a" * (ANONYMOUS["body_kb"] * KB)
    anonymous = httpx.put(capped_server.url("/capped/anonymous.bin"), content=body, timeout=60,
                          headers={"Cookie": "lang=en"})
    assert anonymous.status_code == 413
    assert anonymous.text == (f"request body of {len(body)} bytes or more exceeds the limit of"
                              f" {ANONYMOUS['limit_kb'] * KB} bytes for a request without"
                              " credentials (max-anonymous-body-size)\n")
    assert _published(capped_server, "/capped/anonymous.bin") == 0
    # the same body with credentials: Zope decides (the admin may), 201
    signed = httpx.put(capped_server.url("/capped/anonymous.bin"), content=body, auth=ADMIN,
                       timeout=60)
    assert signed.status_code == 201, signed.text
    assert _published(capped_server, "/capped/anonymous.bin") == 1
