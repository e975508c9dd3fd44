"""WebDAV helpers for the integration tests: folders to test in, a streamed 1 GB PUT."""

import hashlib
import threading
import time

import httpx

from .server import rss_bytes

LOCKINFO = (b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
            b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
            b"<D:owner>tests</D:owner></D:lockinfo>")


def make_zope_folder(base_url, name, auth):
    """MKCOL ``name`` at the Zope root: an OFS Folder."""
    response = httpx.request("MKCOL", f"{base_url}/{name}/", auth=auth)
    assert response.status_code == 201, response.text


def make_plone_folder(base_url, site_id, name, auth):
    """A Plone Folder ``name`` in the site, through plone.restapi."""
    response = httpx.post(f"{base_url}/{site_id}", auth=auth, timeout=60,
                          headers={"Accept": "application/json"},
                          json={"@type": "Folder", "id": name, "title": name})
    assert response.status_code == 201, response.text


def pattern_body(size, digest, block=1 << 20):
    """``size`` bytes made on the fly (never all in memory); feeds ``digest``."""
    base = hashlib.sha512(b"txzserver-dav").digest() * (block // 64)
    sent = 0
    while sent < size:
        chunk = bytes([(sent // block) & 0xFF]) + base[1:min(block, size - sent)]
        digest.update(chunk)
        sent += len(chunk)
        yield chunk


class RssPeak(threading.Thread):
    """Samples a process's RSS every 50 ms until stopped; ``peak`` is the largest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.base = self.peak = rss_bytes(pid)
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.05)

    def stop(self):
        self.done.set()
        self.join(5)
        self.peak = max(self.peak, rss_bytes(self.pid))
        return self.peak - self.base


def sha256_of_download(url, auth, timeout=600):
    digest = hashlib.sha256()
    size = 0
    with httpx.stream("GET", url, auth=auth, timeout=timeout) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
