"""Plone content through plone.restapi: a page, a 100 MB File upload, download and Range."""

import base64
import hashlib
import os

import httpx
import pytest


@pytest.fixture(scope="module")
def token(plone_server, site_id, admin_auth):
    response = httpx.post(plone_server.url(f"/{site_id}/@login"),
                          json={"login": admin_auth[0], "password": admin_auth[1]},
                          headers={"Accept": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def api(token):
    return {"Accept": "application/json", "Authorization": f"Bearer {token}"}


def test_add_page(plone_server, site_id, token):
    response = httpx.post(plone_server.url(f"/{site_id}"), headers=api(token),
                          json={"@type": "Document", "id": "hello", "title": "Hello txzserver"},
                          timeout=60)
    assert response.status_code == 201, response.text
    page = httpx.get(plone_server.url(f"/{site_id}/hello"), headers={"Authorization": f"Bearer {token}"},
                     timeout=60)
    assert page.status_code == 200
    assert "Hello txzserver" in page.text


@pytest.fixture(scope="module")
def uploaded(plone_server, site_id, token):
    """A 100 MB File created through plone.restapi (base64 in JSON, as Volto does)."""
    data = os.urandom(100 * 1024 * 1024)
    body = {"@type": "File", "id": "upload.bin", "title": "Uploaded",
            "file": {"data": base64.b64encode(data).decode("ascii"), "encoding": "base64",
                     "filename": "upload.bin", "content-type": "application/octet-stream"}}
    response = httpx.post(plone_server.url(f"/{site_id}"), headers=api(token), json=body,
                          timeout=300)
    assert response.status_code == 201, response.text[:500]
    return {"path": f"/{site_id}/upload.bin", "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "slice": data[1_000_000:1_000_000 + 65536]}


def test_download_matches_upload(plone_server, uploaded):
    digest = hashlib.sha256()
    with httpx.stream("GET", plone_server.url(uploaded["path"] + "/@@download/file"), timeout=120) as r:
        assert r.status_code == 200
        assert int(r.headers["content-length"]) == uploaded["size"]
        for chunk in r.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == uploaded["sha256"]


def test_download_over_http2(plone_server, uploaded):
    digest = hashlib.sha256()
    with httpx.Client(http1=False, http2=True, timeout=120) as client:
        with client.stream("GET", plone_server.url(uploaded["path"] + "/@@download/file")) as r:
            assert r.http_version == "HTTP/2"
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                digest.update(chunk)
    assert digest.hexdigest() == uploaded["sha256"]


def test_range_request(plone_server, uploaded):
    start, end = 1_000_000, 1_000_000 + 65535
    response = httpx.get(plone_server.url(uploaded["path"] + "/@@download/file"),
                         headers={"Range": f"bytes={start}-{end}"}, timeout=60)
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{uploaded['size']}"
    assert response.content == uploaded["slice"]


def test_head_of_download_has_no_body(plone_server, uploaded):
    response = httpx.head(plone_server.url(uploaded["path"] + "/@@download/file"), timeout=60)
    assert response.status_code == 200
    assert response.content == b""


def test_template_file_streams(plone_server, big_file):
    digest = hashlib.sha256()
    with httpx.stream("GET", plone_server.url(big_file["path"] + "/@@download/file"), timeout=120) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == big_file["sha256"]


def test_ofs_file_written_in_chunks_is_spooled_and_streamed(plone_server, admin_auth):
    """OFS.Image.File sends large data with RESPONSE.write(); it must not pile up in memory."""
    from tests.support.slow import SlowReader
    from tests.support.server import wait_for

    data = os.urandom(60 * 1024 * 1024)
    put = httpx.put(plone_server.url("/ofs-big.bin"), content=data, auth=admin_auth,
                    headers={"Content-Type": "application/octet-stream"}, timeout=120)
    assert put.status_code in (201, 204), put.text
    digest = hashlib.sha256()
    with httpx.stream("GET", plone_server.url("/ofs-big.bin"), timeout=120) as r:
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    del data

    baseline = plone_server.rss()
    reader = SlowReader(plone_server.port, "/ofs-big.bin", rate=2 * 1024 * 1024)
    reader.start()
    try:
        wait_for(lambda: reader.received > 4 * 1024 * 1024 or reader.error, 30, what="reader")
        growth = (plone_server.rss() - baseline) / 2**20
        front = httpx.get(plone_server.url("/Plone"), timeout=10)
    finally:
        reader.stop()
        reader.join(10)
    print(f"OFS File slow download: RSS growth {growth:.1f} MB")
    assert reader.error is None
    assert front.status_code == 200
    assert growth < 30, f"RSS grew {growth:.1f} MB while streaming a 60 MB OFS File"
