"""Backups that are restored: the images' `backup` and `restore` commands (the scripts their
entrypoints run: images/plone/scripts/zodb_backup.py, images/postgresql/backup.sh) on real
storages with a real Plone site served by txzserver.

ZEO: runzeo on a copy of the session's Plone site (Data.fs and blobs); a Document made through an
instance, the backup taken from the live server's files, a second Document made and the first
deleted; restore refused while ZEO holds Data.fs and, once stopped, while Data.fs holds data;
`restore --force`, ZEO and a new instance started: the first Document is back, the second is gone,
the site's 100 MB File downloads whole (its blob came back from the backup's copy).
RelStorage: the same on a copy of the session's Plone database in the session's PostgreSQL
(pg_dump -Fc over TCP with a password file, as the CronJob runs it), the refusal "in use" while
the instance is connected; the File's blob chunks (large objects) download whole afterwards; a
second backup with BACKUP_KEEP=1 prunes the first; restore into a new empty database needs no
--force. Misuse of backup.sh exits non-zero with a message.
"""

import hashlib
import os
import secrets
import subprocess
import sys

import httpx
import pytest

from tests.support.cluster import zeo_storage
from tests.support.instance import ADMIN, BIG_FILE_ID, ROOT, SITE_ID, http_server, new_instance
from tests.support.outage import Zeo
from tests.support.postgresql import STORAGE_CONF, USER, bin_dir, relstorage_environment
from tests.support.restapi import api
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(600)

ZODB_BACKUP = ROOT / "images" / "plone" / "scripts" / "zodb_backup.py"
PG_BACKUP = ROOT / "images" / "postgresql" / "backup.sh"


def make_document(server, doc_id, title):
    api(server, "POST", f"/{SITE_ID}", json={
        "@type": "Document", "id": doc_id, "title": title,
        "text": {"data": f"<p>{title}</p>", "content-type": "text/html", "encoding": "utf-8"}})


def document_title(server, doc_id):
    """The Document's title through plone.restapi, or None when it is not there (404)."""
    response = httpx.get(server.url(f"/{SITE_ID}/{doc_id}"), auth=ADMIN, timeout=60,
                         headers={"Accept": "application/json"})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text[:300]
    return response.json()["title"]


def download_sha256(server, file_id):
    digest = hashlib.sha256()
    with httpx.stream("GET", server.url(f"/{SITE_ID}/{file_id}/@@download/file"), auth=ADMIN,
                      timeout=120) as response:
        assert response.status_code == 200, response.status_code
        for chunk in response.iter_bytes():
            digest.update(chunk)
    return digest.hexdigest()


def run(argv, env):
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    print(result.stderr)  # the backup's log, in the test report when it fails
    return result


# --- ZEO and FileStorage ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def zeo_place(tmp_path_factory, plone_template):
    directory = tmp_path_factory.mktemp("backup-zeo")
    zeo = Zeo(directory / "zeo", plone_template["directory"])
    env = dict(os.environ, FILESTORAGE=str(zeo.directory / "var" / "Data.fs"),
               BLOBSTORAGE=str(zeo.directory / "var" / "blobstorage"),
               BACKUP_DIR=str(directory / "backups"), BACKUP_KEEP="2")
    try:
        zeo.start()
        yield {"zeo": zeo, "directory": directory, "env": env}
    finally:
        zeo.stop()


def zeo_instance(place, name):
    conf = new_instance(place["directory"] / name, http_server(0), "server-threads 2",
                        storage=zeo_storage(place["zeo"].address))
    return ServerProcess(conf).start()


def zodb_backup(place, *args):
    return run([sys.executable, str(ZODB_BACKUP), *args], place["env"])


def test_zeo_backup_delete_restore_read_again(zeo_place, plone_template):
    server = zeo_instance(zeo_place, "before")
    try:
        make_document(server, "kept-doc", "Kept through a restore")
        backup = zodb_backup(zeo_place, "backup")
        assert backup.returncode == 0
        assert "wrote full backup" in backup.stderr and "files copied" in backup.stderr
        make_document(server, "after-backup", "Made after the backup")
        api(server, "DELETE", f"/{SITE_ID}/kept-doc")
        assert document_title(server, "kept-doc") is None

        in_use = zodb_backup(zeo_place, "restore", "--force")
        assert in_use.returncode == 1 and "is in use (locked)" in in_use.stderr
    finally:
        assert server.stop() == 0, server.log_tail()
    zeo_place["zeo"].stop()

    not_empty = zodb_backup(zeo_place, "restore")
    assert not_empty.returncode == 1 and "holds data: restore --force replaces it" in not_empty.stderr
    restored = zodb_backup(zeo_place, "restore", "--force")
    assert restored.returncode == 0
    assert "restored" in restored.stderr

    zeo_place["zeo"].start()
    server = zeo_instance(zeo_place, "after")
    try:
        assert document_title(server, "kept-doc") == "Kept through a restore"
        assert document_title(server, "after-backup") is None
        assert download_sha256(server, BIG_FILE_ID) == plone_template["big_sha256"]
    finally:
        assert server.stop() == 0, server.log_tail()


# --- RelStorage on PostgreSQL ----------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_place(tmp_path_factory, shared_postgresql, relstorage_template):
    directory = tmp_path_factory.mktemp("backup-pg")
    database = f"backup_{secrets.token_hex(4)}"
    dsn = shared_postgresql.create_database(database, template=relstorage_template["template_database"])
    password_file = directory / "password"
    password_file.write_text(shared_postgresql.password + "\n")
    password_file.chmod(0o600)
    # the image's PATH puts PostgreSQL's own bin first (vacuumlo is there)
    env = dict(os.environ, PATH=f"{bin_dir()}:{os.environ['PATH']}", PGHOST="127.0.0.1",
               PGPORT=str(shared_postgresql.port), PGUSER=USER, PGDATABASE=database,
               PGPASSWORD_FILE=str(password_file), BACKUP_DIR=str(directory / "backups"),
               TMPDIR=str(directory))
    env.pop("PGPASSWORD", None)
    return {"postgresql": shared_postgresql, "database": database, "dsn": dsn, "env": env,
            "directory": directory, "files": relstorage_template["files"]}


def pg_backup(place, *args, **extra):
    return run(["bash", str(PG_BACKUP), *args], dict(place["env"], **extra))


def relstorage_instance(place, name):
    """An instance of its own (a new folder: its event log says where a new start listens)."""
    directory = place["directory"] / name
    conf = new_instance(directory, http_server(0), "server-threads 2", storage=f"%include {STORAGE_CONF}")
    return ServerProcess(conf, env=relstorage_environment(place["dsn"], directory)).start()


def dumps(place):
    return sorted(p.name for p in (place["directory"] / "backups" / "postgresql").iterdir())


def test_postgresql_backup_delete_restore_read_again(pg_place):
    server = relstorage_instance(pg_place, "before")
    try:
        make_document(server, "kept-doc", "Kept through a restore")
        backup = pg_backup(pg_place, "backup")
        assert backup.returncode == 0
        (dump,) = dumps(pg_place)
        assert dump.startswith(pg_place["database"] + "-") and dump.endswith(".dump")
        assert f"wrote {dump}" in backup.stderr
        make_document(server, "after-backup", "Made after the backup")
        api(server, "DELETE", f"/{SITE_ID}/kept-doc")
        assert document_title(server, "kept-doc") is None

        in_use = pg_backup(pg_place, "restore")
        assert in_use.returncode == 1 and "is in use" in in_use.stderr
    finally:
        assert server.stop() == 0, server.log_tail()

    not_empty = pg_backup(pg_place, "restore")
    assert not_empty.returncode == 1 and "is not empty" in not_empty.stderr
    restored = pg_backup(pg_place, "restore", "--force")
    assert restored.returncode == 0
    assert f"restored {dump} into {pg_place['database']}" in restored.stderr

    server = relstorage_instance(pg_place, "after")
    try:
        assert document_title(server, "kept-doc") == "Kept through a restore"
        assert document_title(server, "after-backup") is None
        assert download_sha256(server, BIG_FILE_ID) == pg_place["files"][BIG_FILE_ID]
    finally:
        assert server.stop() == 0, server.log_tail()


def test_postgresql_retention_and_restore_into_a_new_database(pg_place):
    assert pg_backup(pg_place, "backup").returncode == 0
    before = dumps(pg_place)
    second = pg_backup(pg_place, "backup", BACKUP_KEEP="1")
    assert second.returncode == 0
    (kept,) = dumps(pg_place)
    assert kept not in before and "kept 1 dumps (BACKUP_KEEP=1)" in second.stderr
    assert all(f"pruned {old}" in second.stderr for old in before)

    fresh = f"restored_{secrets.token_hex(4)}"
    pg_place["postgresql"].create_database(fresh)
    # the new database has no dump of its own: the other's, named by its file
    assert pg_backup(pg_place, "restore", PGDATABASE=fresh).returncode == 1
    restored = pg_backup(pg_place, "restore", kept, PGDATABASE=fresh)
    assert restored.returncode == 0  # an empty database: no --force needed
    count = "SELECT count(*) FROM object_state"
    assert pg_place["postgresql"].sql(count, database=fresh) == \
        pg_place["postgresql"].sql(count, database=pg_place["database"]) > 0


@pytest.mark.parametrize("args, extra, status, message", [
    (("restore",), {}, 1, "no dump of"),
    (("backup",), {"BACKUP_KEEP": "none"}, 2, "BACKUP_KEEP=none: a whole number of at least 1"),
    (("backup", "extra"), {}, 2, "usage: backup (no arguments)"),
    (("vacuum",), {}, 2, "usage: backup | restore"),
    (("backup",), {"PGPASSWORD_FILE": "/nonexistent/password"}, 2, "cannot read the password file"),
    (("backup",), {"PGDATABASE": "no_such_database"}, 1, "pg_dump of no_such_database failed"),
])
def test_backup_sh_misuse_exits_non_zero(pg_place, tmp_path, args, extra, status, message):
    result = pg_backup(pg_place, *args, BACKUP_DIR=str(tmp_path), **extra)
    assert result.returncode == status, result.stderr
    assert message in result.stderr
