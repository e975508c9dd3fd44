"""RelStorage on a real PostgreSQL (Debian's, started by the test): `txzserver serve` on a zope.conf
that includes the plone image's config/storage-relstorage.conf with the image's defaults.

The Plone site is made in PostgreSQL, a File is created by a script and another uploaded through
the server; both download whole (sha256), their blobs are in the database (not in a blob
directory of ours); after the server stops, its blob cache is deleted, the database is packed
(zodbpack on config/relstorage-pack.conf, as the image's `pack`) and the server restarted, both
still download whole from PostgreSQL.
"""

import base64
import hashlib
import os
import shutil
import subprocess

import httpx
import pytest

from tests.support.instance import (
    ADMIN, BUILD_SCRIPT, ROOT, SITE_ID, TXZSERVER, http_server, new_instance, write_inituser,
    write_random_file,
)
from tests.support.postgresql import STORAGE_CONF, PostgreSQL, image_environment
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(420)

SCRIPT_FILE_SIZE = 8 * 1024 * 1024 + 4321  # 9 chunks of RELSTORAGE_BLOB_CHUNK_SIZE (1 MiB)
UPLOAD_SIZE = 5 * 1024 * 1024
PACK_CONF = ROOT / "config" / "relstorage-pack.conf"
ZODBPACK = os.path.join(os.path.dirname(TXZSERVER), "zodbpack")


@pytest.fixture(scope="module")
def postgresql():
    server = PostgreSQL(timeout=60)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def instance(tmp_path_factory, postgresql):
    """An instance folder whose zope.conf stores everything in PostgreSQL; the site built in it."""
    directory = tmp_path_factory.mktemp("relstorage")
    conf = new_instance(directory, http_server(0), "server-threads 2",
                        storage=f"%include {STORAGE_CONF}")
    write_inituser(directory)
    env = dict(os.environ, **image_environment(postgresql.dsn, directory / "blobcache"),
               TMPDIR=str(directory / "tmp"))
    (directory / "tmp").mkdir()
    source = directory / "file-source.bin"
    digest = write_random_file(source, SCRIPT_FILE_SIZE, seed=b"relstorage")
    subprocess.run([TXZSERVER, "run", str(conf), str(BUILD_SCRIPT), SITE_ID, str(source), "file.bin"],
                   check=True, cwd=directory, env=env, timeout=300)
    return {"conf": conf, "directory": directory, "env": env,
            "files": {"file.bin": digest}}


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
    chunks = postgresql.sql("SELECT count(*) FROM blob_chunk")
    stored = postgresql.sql("SELECT coalesce(sum(length(lo_get(chunk))), 0) FROM blob_chunk")
    assert chunks >= 2 and stored >= SCRIPT_FILE_SIZE + UPLOAD_SIZE, (chunks, stored)
    assert postgresql.sql("SELECT count(*) FROM object_state") > 1000  # the Plone site
    directory = served["directory"]
    assert (directory / "blobcache").is_dir()
    assert not (directory / "var" / "Data.fs").exists()
    assert not (directory / "var" / "blobstorage").exists()


def test_pack_then_restart_without_blob_cache(served, postgresql):
    """The server stopped, its blob cache deleted, the database packed as the image's `pack 0`
    does: the restarted server serves the site and every blob from PostgreSQL."""
    assert served["server"].stop() == 0
    shutil.rmtree(served["directory"] / "blobcache")
    before = postgresql.sql("SELECT count(*) FROM object_state")
    packed = subprocess.run([ZODBPACK, "-d", "0", str(PACK_CONF)], cwd=served["directory"],
                            env=served["env"], capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0, packed.stderr[-3000:]
    after = postgresql.sql("SELECT count(*) FROM object_state")
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
