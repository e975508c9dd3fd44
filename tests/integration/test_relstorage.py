"""RelStorage on a real PostgreSQL (Debian's, the session's): `txzserver serve` on a zope.conf
that includes the plone image's config/storage-relstorage.conf with the image's defaults.

The server runs on a copy of the session's Plone site built in PostgreSQL (``relstorage_template``:
its File made by the build script); another File is uploaded through the server; both download
whole (sha256), their blobs are in the database (not in a blob directory of ours); after the
server stops, its blob cache is deleted, the database is packed (zodbpack on
config/relstorage-pack.conf, as the image's `pack`) and the server restarted, both still
download whole from PostgreSQL.
"""

import base64
import hashlib
import os
import shutil
import subprocess

import httpx
import pytest

from tests.support.instance import ADMIN, ROOT, SITE_ID, TXZSERVER, http_server, new_instance
from tests.support.postgresql import STORAGE_CONF, relstorage_environment
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(420)

UPLOAD_SIZE = 5 * 1024 * 1024
PACK_CONF = ROOT / "config" / "relstorage-pack.conf"
ZODBPACK = os.path.join(os.path.dirname(TXZSERVER), "zodbpack")
DATABASE = "relstorage_test"


@pytest.fixture(scope="module")
def postgresql(shared_postgresql):
    return shared_postgresql


@pytest.fixture(scope="module")
def instance(tmp_path_factory, postgresql, relstorage_template):
    """An instance folder whose zope.conf stores everything in PostgreSQL, in a copy of the
    template database (the site and its script-made File)."""
    dsn = postgresql.create_database(DATABASE, template=relstorage_template["template_database"])
    directory = tmp_path_factory.mktemp("relstorage")
    conf = new_instance(directory, http_server(0), "server-threads 2",
                        storage=f"%include {STORAGE_CONF}")
    return {"conf": conf, "directory": directory, "env": relstorage_environment(dsn, directory),
            "files": dict(relstorage_template["files"]),
            "script_file_size": relstorage_template["file_size"]}


def download_sha256(server, file_id):
    digest = hashlib.sha256()
    with httpx.stream("GET", server.url(f"/{SITE_ID}/{file_id}/@@download/file"), timeout=60) as r:
        assert r.status_code == 200, r.status_code
        for chunk in r.iter_bytes():
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def served(instance):
    """The first run of the server: the site answers; a File is uploaded through plone.restapi."""
    server = ServerProcess(instance["conf"], env=instance["env"]).start()
    try:
        assert httpx.get(server.url(f"/{SITE_ID}"), timeout=60).status_code == 200
        data = os.urandom(UPLOAD_SIZE)
        response = httpx.post(server.url(f"/{SITE_ID}"), auth=ADMIN, timeout=120,
                              headers={"Accept": "application/json"}, json={
                                  "@type": "File", "id": "upload.bin", "title": "Uploaded",
                                  "file": {"data": base64.b64encode(data).decode("ascii"),
                                           "encoding": "base64", "filename": "upload.bin",
                                           "content-type": "application/octet-stream"}})
        assert response.status_code == 201, response.text[:500]
        instance["files"]["upload.bin"] = hashlib.sha256(data).hexdigest()
        yield {"server": server, **instance}
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]


def test_site_and_blobs_download_whole(served):
    for file_id, digest in served["files"].items():
        assert download_sha256(served["server"], file_id) == digest, file_id


def test_blobs_live_in_postgresql(served, postgresql):
    """Blob chunks (large objects) in the database; locally only the cache, no blob storage."""
    chunks = postgresql.sql("SELECT count(*) FROM blob_chunk", database=DATABASE)
    stored = postgresql.sql("SELECT coalesce(sum(length(lo_get(chunk))), 0) FROM blob_chunk",
                            database=DATABASE)
    # one row (one large object) per blob: the script's File and the upload, and nothing else
    assert chunks == len(served["files"]) == 2, (chunks, stored)
    assert stored == served["script_file_size"] + UPLOAD_SIZE, (chunks, stored)
    assert postgresql.sql("SELECT count(*) FROM object_state", database=DATABASE) > 1000  # the site
    directory = served["directory"]
    assert (directory / "blobcache").is_dir()
    assert not (directory / "var" / "Data.fs").exists()
    assert not (directory / "var" / "blobstorage").exists()


def test_pack_then_restart_without_blob_cache(served, postgresql):
    """The server stopped, its blob cache deleted, the database packed as the image's `pack 0`
    does: the restarted server serves the site and every blob from PostgreSQL."""
    assert served["server"].stop() == 0
    shutil.rmtree(served["directory"] / "blobcache")
    before = postgresql.sql("SELECT count(*) FROM object_state", database=DATABASE)
    packed = subprocess.run([ZODBPACK, "-d", "0", str(PACK_CONF)], cwd=served["directory"],
                            env=served["env"], capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0, packed.stderr[-3000:]
    after = postgresql.sql("SELECT count(*) FROM object_state", database=DATABASE)
    assert after < before, (before, after)  # old revisions removed (history-preserving schema)
    # ServerProcess reads the port from the event log: the restarted server starts a new one
    log = served["directory"] / "log" / "event.log"
    log.rename(log.with_name("event-first-run.log"))
    server = ServerProcess(served["conf"], env=served["env"]).start()
    try:
        assert httpx.get(server.url(f"/{SITE_ID}"), timeout=60).status_code == 200
        for file_id, digest in served["files"].items():
            assert download_sha256(server, file_id) == digest, file_id
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]
