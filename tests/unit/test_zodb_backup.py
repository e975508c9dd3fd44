"""The plone image's `backup` and `restore` for FileStorage (images/plone/scripts/zodb_backup.py)
on a real FileStorage with blobs in tmp_path, through the real repozo, as the image runs it.

Backed up while the storage is open (a live server), full then incremental, with the blobs
beside; restore refused while Data.fs is locked and while it holds data; `--force` restores the
newest or a named earlier point, records and blobs alike; a new full backup after
BACKUP_FULL_DAYS, the oldest beyond BACKUP_KEEP pruned with their blobs, unchanged blobs hard
links; misconfiguration exits 2 with a message. The Kubernetes round trip with ZEO and Plone:
tests/integration/test_backup.py.
"""

import os
import pathlib
import subprocess
import sys

import pytest
import transaction
from ZODB import DB
from ZODB.blob import Blob
from ZODB.FileStorage import FileStorage

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "images" / "plone" / "scripts" / "zodb_backup.py"


@pytest.fixture
def place(tmp_path):
    (tmp_path / "data" / "filestorage").mkdir(parents=True)
    return tmp_path


def env_for(place, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "ZODB_"))}
    env.update(FILESTORAGE=str(place / "data" / "filestorage" / "Data.fs"),
               BLOBSTORAGE=str(place / "data" / "blobstorage"), BACKUP_DIR=str(place / "backups"))
    env.update(extra)
    return env


def run(place, *args, **extra):
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env_for(place, **extra),
                          capture_output=True, text=True, timeout=120)


def open_db(place):
    storage = FileStorage(str(place / "data" / "filestorage" / "Data.fs"),
                          blob_dir=str(place / "data" / "blobstorage"))
    return DB(storage)


def commit(db, **values):
    """Store ``values`` in the root: bytes as blobs, anything else as it is."""
    connection = db.open()
    for key, value in values.items():
        if isinstance(value, bytes):
            blob = Blob()
            with blob.open("w") as f:
                f.write(value)
            value = blob
        connection.root()[key] = value
    transaction.commit()
    connection.close()


def read(place):
    """The root's values, blobs read out, from a fresh open of the restored storage."""
    db = open_db(place)
    try:
        connection = db.open()
        values = {}
        for key, value in connection.root().items():
            if isinstance(value, Blob):
                with value.open("r") as f:
                    value = f.read()
            values[key] = value
        connection.close()
        return values
    finally:
        db.close()


def listing(place):
    result = run(place, "restore", "--list")
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()]


def test_backup_of_a_live_storage_and_restore(place):
    db = open_db(place)
    try:
        commit(db, doc="one", blob=b"first blob")
        first = run(place, "backup")
        assert first.returncode == 0, first.stderr
        assert "wrote full backup" in first.stderr, first.stderr
        # the blob and the directory's .layout file
        assert "blobs: 2 files copied" in first.stderr, first.stderr
        commit(db, doc="two", blob2=b"second blob")
        second = run(place, "backup")
        assert second.returncode == 0, second.stderr
        assert "wrote incremental backup" in second.stderr, second.stderr
        assert "blobs: 1 files copied" in second.stderr  # only the new one
        (full, kind1), (incremental, kind2) = listing(place)
        assert (kind1, kind2) == ("full", "incremental")

        in_use = run(place, "restore", "--force")
        assert in_use.returncode == 1
        assert "is in use (locked)" in in_use.stderr
    finally:
        db.close()

    not_empty = run(place, "restore")
    assert not_empty.returncode == 1 and "holds data: restore --force replaces it" in not_empty.stderr
    assert read(place)["doc"] == "two"  # untouched by the refusals

    earlier = run(place, "restore", "--force", full)
    assert earlier.returncode == 0, earlier.stderr
    assert read(place) == {"doc": "one", "blob": b"first blob"}

    newest = run(place, "restore", "--force")
    assert newest.returncode == 0, newest.stderr
    assert read(place) == {"doc": "two", "blob": b"first blob", "blob2": b"second blob"}


def test_restore_into_an_empty_place_needs_no_force(place, tmp_path_factory):
    db = open_db(place)
    commit(db, doc="kept", blob=b"kept blob")
    db.close()
    assert run(place, "backup").returncode == 0
    fresh = tmp_path_factory.mktemp("fresh")
    backups = str(place / "backups")
    result = run(fresh, "restore", BACKUP_DIR=backups)
    assert result.returncode == 0, result.stderr
    assert read(fresh) == {"doc": "kept", "blob": b"kept blob"}


def test_full_backups_rotate_and_old_ones_are_pruned(place):
    db = open_db(place)
    try:
        stamps = []
        for number in range(3):
            commit(db, **{f"blob{number}": f"blob {number}".encode()})
            result = run(place, "backup", BACKUP_FULL_DAYS="0", BACKUP_KEEP="2")
            assert result.returncode == 0, result.stderr
            assert "wrote full backup" in result.stderr
            stamps.append(listing(place)[-1][0])
        assert f"pruned {stamps[0]}.fsz" in result.stderr and f"pruned blobs/{stamps[0]}" in result.stderr
        assert [stamp for stamp, _ in listing(place)] == stamps[1:]
        blobs = place / "backups" / "filestorage" / "blobs"
        assert sorted(p.name for p in blobs.iterdir()) == stamps[1:]
        # blob0, blob1 and .layout were in the previous full backup's copy: linked, not copied
        assert "blobs: 1 files copied" in result.stderr and "3 linked" in result.stderr
        older = {p.relative_to(blobs / stamps[1]): p.stat().st_ino
                 for p in (blobs / stamps[1]).rglob("*.blob")}
        newer = {p.relative_to(blobs / stamps[2]): p.stat().st_ino
                 for p in (blobs / stamps[2]).rglob("*.blob")}
        assert len(older) == 2 and len(newer) == 3
        assert all(newer[path] == inode for path, inode in older.items())
    finally:
        db.close()


def test_unchanged_storage_writes_no_file(place):
    db = open_db(place)
    commit(db, doc="same")
    db.close()
    assert run(place, "backup").returncode == 0
    again = run(place, "backup")
    assert again.returncode == 0, again.stderr
    assert "has not changed since the last backup" in again.stderr
    assert len(listing(place)) == 1


@pytest.mark.parametrize("args, extra, status, message", [
    (("backup",), {"BACKUP_KEEP": "0"}, 2, "BACKUP_KEEP='0': a whole number of at least 1"),
    (("backup",), {"BACKUP_FULL_DAYS": "weekly"}, 2, "BACKUP_FULL_DAYS='weekly': a whole number"),
    (("backup",), {"ZODB_STORAGE": "relstorage"}, 2, "txzserver/postgresql image's `backup`"),
    (("backup",), {}, 2, "no FileStorage at"),
    (("restore",), {}, 1, "no backup in"),
    (("backup", "--force"), {}, 2, "backup takes no NAME and no --force"),
])
def test_misconfiguration_and_refusals_exit_non_zero(place, args, extra, status, message):
    result = run(place, *args, **extra)
    assert result.returncode == status, result.stderr
    assert message in result.stderr


def test_an_unknown_name_lists_the_backups(place):
    db = open_db(place)
    commit(db, doc="x")
    db.close()
    assert run(place, "backup").returncode == 0
    (stamp, _), = listing(place)
    result = run(place, "restore", "--force", "2001-01-01-00-00-00")
    assert result.returncode == 1
    assert "no backup named 2001-01-01-00-00-00" in result.stderr and stamp in result.stderr
