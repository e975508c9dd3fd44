"""The compose stack on RelStorage (`make smoke-relstorage`: STORAGE=relstorage, its own project and
port): PostgreSQL from txzserver/postgresql instead of ZEO, the instances RelStorage clients.

Through the TLS front: the front page, a File uploaded through one instance and read back (sha256)
through both, its blob held in PostgreSQL; `pack` in an instance container exits 0 and the File is
still whole; the documented compose `backup` of the postgresql service while the stack runs, its
dump listed by `restore --list`; the instances come back after PostgreSQL restarts. Skipped on the ZEO stack.
"""

import base64
import hashlib
import os
import subprocess
import time
import uuid

import httpx
import pytest

from .conftest import DOCKER, api, compose, compose_run, container

#: only against the stack on RelStorage (`make smoke-relstorage`); deselected against the other
STACK_STORAGE = "relstorage"

SIZE = 6 * 1024 * 1024 + 12345  # several 1 MiB blob chunks, the last one partial


def docker(*args, timeout=120):
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)


def psql(sql):
    """One value from PostgreSQL, over the server container's local socket."""
    result = docker("exec", container("postgresql"), "psql", "-U", "zope", "-d", "zope", "-tAc", sql)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def sha256_of(client, path):
    """(sha256, instance that answered) of a download through the front."""
    digest = hashlib.sha256()
    with client.stream("GET", path, headers={"Connection": "close"}) as response:
        assert response.status_code == 200, response.status_code
        for chunk in response.iter_bytes():
            digest.update(chunk)
        return digest.hexdigest(), response.headers.get("X-Txzserver-Instance")


@pytest.fixture(scope="module")
def uploaded(client, admin):
    data, name = os.urandom(SIZE), f"relstorage-{uuid.uuid4().hex[:8]}.bin"
    api(client, "POST", "/Plone", admin, timeout=120, json={
        "@type": "File", "id": name, "title": "RelStorage blob",
        "file": {"data": base64.b64encode(data).decode("ascii"), "encoding": "base64",
                 "filename": name, "content-type": "application/octet-stream"}})
    return {"path": f"/Plone/{name}/@@download/file", "sha256": hashlib.sha256(data).hexdigest()}


def test_front_page_through_the_front(client):
    response = client.get("/Plone")
    assert response.status_code == 200
    assert "Plone" in response.text


def test_instances_are_relstorage_clients_and_zeo_does_not_run():
    assert container("zeo") == ""
    clients = int(psql("SELECT count(DISTINCT client_addr) FROM pg_stat_activity "
                       "WHERE datname = 'zope' AND client_addr IS NOT NULL"))
    assert clients >= 2, clients  # instance1 and instance2
    for name in ("instance1", "instance2"):
        entries = docker("exec", container(name), "ls", "/data").stdout.split()
        # a blob cache, no blob storage or FileStorage of its own
        assert "blobcache" in entries and "blobstorage" not in entries and "filestorage" not in entries


def test_blob_round_trip_through_both_instances(client, uploaded):
    """Read until both instances have answered: the one that did not store the File fetches
    the blob from PostgreSQL into its own cache."""
    seen, deadline = set(), time.monotonic() + 60
    while seen != {"instance1", "instance2"}:
        assert time.monotonic() < deadline, f"only {seen} served the download"
        digest, instance = sha256_of(client, uploaded["path"])
        assert digest == uploaded["sha256"], instance
        seen.add(instance)


def test_blob_is_stored_in_postgresql(uploaded):
    # RelStorage's PostgreSQL adapter keeps each blob chunk as a large object (blob_chunk.chunk)
    chunks = int(psql("SELECT count(*) FROM blob_chunk"))
    stored = int(psql("SELECT coalesce(sum(length(lo_get(chunk))), 0) FROM blob_chunk"))
    assert chunks >= 1 and stored >= SIZE, (chunks, stored)
    print(f"\nPostgreSQL: {chunks} blob chunks, {stored} bytes")


def test_pack_in_an_instance_container(client, uploaded):
    started = time.monotonic()
    result = docker("exec", container("instance1"), "/app/bin/docker-entrypoint.sh", "pack", "0",
                    timeout=300)
    print(f"\npack 0: exit {result.returncode} in {time.monotonic() - started:.1f} s\n"
          f"{result.stdout[-500:]}{result.stderr[-1500:]}")
    assert result.returncode == 0
    assert result.stdout.rstrip().endswith("packed")
    assert sha256_of(client, uploaded["path"])[0] == uploaded["sha256"]


def test_postgresql_backup_of_the_live_stack(backups):
    """docs/operators/backups.md's compose command: the postgresql service's `backup` over the
    network with the stack's password, while the stack runs; `restore --list` lists the dump."""
    password = os.environ["POSTGRES_PASSWORD"]
    backup = compose_run("--rm", "--no-deps", "-v", f"{backups}:/backups", "-e", "PGHOST=postgresql",
                         "-e", f"PGPASSWORD={password}", "postgresql", "backup")
    assert backup.returncode == 0, backup.stdout + backup.stderr[-3000:]
    (dump,) = list((backups / "postgresql").glob("*.dump"))
    listed = compose_run("--rm", "--no-deps", "-v", f"{backups}:/backups", "postgresql", "restore", "--list")
    assert listed.returncode == 0 and dump.name in listed.stdout.split(), listed.stdout + listed.stderr
    assert compose("ps", "-q", "postgresql").strip()  # the running database was not stopped


def test_instances_come_back_after_postgresql_restarts(client, uploaded):
    started = time.monotonic()
    assert docker("restart", container("postgresql")).returncode == 0
    deadline = time.monotonic() + 90
    while True:
        try:
            if client.get("/Plone", headers={"Connection": "close"}).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the site did not come back after PostgreSQL restarted"
        time.sleep(0.5)
    print(f"\nfront page 200 again {time.monotonic() - started:.1f} s after `docker restart postgresql`")
    assert sha256_of(client, uploaded["path"])[0] == uploaded["sha256"]
