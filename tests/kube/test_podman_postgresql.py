"""The PostgreSQL image's `backup` and `restore` in its own containers under podman (`make
k8s-smoke`): the image built here (txzserver/postgresql with its own tag, POSTGRESQL_TAG), the
server made from POSTGRES_* with its password as a file, and the commands run as the backup
CronJob and the restore Job run them (components/backup-postgresql, config/kubernetes/restore):
over the network by the server's name, the password from a mounted file, a read-only root,
the backups on a named volume.

A table row and a large object (RelStorage keeps blobs as large objects) are backed up; the row
is changed; restore is refused while the database holds tables, and while another session uses
it; `restore --force` ends that session and brings the row back, the large object with it.
"""

import os
import pathlib
import re
import secrets

import pytest

from tests.kube.podman import logs, podman_image, run, wait_for

pytestmark = [pytest.mark.timeout(600)]

ROOT = pathlib.Path(__file__).resolve().parents[2]
TAG = re.search(r'^variable "POSTGRESQL_TAG" \{ default = "([^"]+)" \}$',
                (ROOT / "images" / "docker-bake.hcl").read_text(), re.MULTILINE)[1]
SOURCE = os.environ.get("KUBE_SMOKE_POSTGRESQL_IMAGE", f"txzserver/postgresql:{TAG}")
SECRET = "/run/secrets/postgresql/password"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if run("sh", "-c", "command -v podman", check=False).returncode:
        pytest.fail("needs podman: `make k8s-smoke` installs it (images/podman-host.sh)")
    tmp = tmp_path_factory.mktemp("pg")
    image = podman_image(SOURCE, "postgresql")
    suffix = secrets.token_hex(4)
    names = {"network": f"txzpg{suffix}", "server": f"postgresql-{suffix}",
             "data": f"txzpg-data-{suffix}", "backups": f"txzpg-backups-{suffix}"}
    password = tmp / "password"
    password.write_text(secrets.token_hex(12))
    password.chmod(0o644)  # read by the image's uid 500 through the bind mount
    run("podman", "network", "create", names["network"])
    try:
        run("podman", "run", "-d", "--name", names["server"], "--network", names["network"],
            "-e", "POSTGRES_USER=zope", "-e", "POSTGRES_DB=zope", "-e", f"POSTGRES_PASSWORD_FILE={SECRET}",
            "-e", "PGDATA=/var/lib/postgresql/data/pgdata", "-v", f"{password}:{SECRET}:ro",
            "-v", f"{names['data']}:/var/lib/postgresql/data", image, timeout=120)
        wait_for(lambda: run("podman", "exec", names["server"], "pg_isready", "-q", "-h", "127.0.0.1",
                             check=False).returncode == 0, 120, "PostgreSQL accepting connections")
        yield {"image": image, "password": password, **names}
    finally:
        artifacts = pathlib.Path(os.environ.get("KUBE_SMOKE_LOGS", tmp))
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "postgresql-server.log").write_text(logs(names["server"]))
        run("podman", "rm", "-f", names["server"], check=False, timeout=120)
        run("podman", "volume", "rm", "-f", names["data"], names["backups"], check=False)
        run("podman", "network", "rm", "-f", names["network"], check=False)


def sql(server, statement):
    """One statement in the server's container (its local socket), the result's text."""
    return run("podman", "exec", server["server"], "psql", "-X", "-q", "-A", "-t", "-U", "zope", "-d",
               "zope", "-v", "ON_ERROR_STOP=1", "-c", statement).stdout.strip()


def command(server, *args):
    """The image's command as the CronJob and the restore Job run it: (exit status, log, and its
    standard output alone)."""
    result = run("podman", "run", "--rm", "--network", server["network"], "--read-only",
                 "-e", f"PGHOST={server['server']}", "-e", "PGUSER=zope", "-e", "PGDATABASE=zope",
                 "-e", f"PGPASSWORD_FILE={SECRET}", "-e", "BACKUP_DIR=/backups",
                 "-v", f"{server['password']}:{SECRET}:ro", "-v", f"{server['backups']}:/backups",
                 server["image"], *args, check=False, timeout=300)
    return result.returncode, result.stdout + result.stderr, result.stdout


def test_backup_change_restore_read_again(server):
    # a row referring to a large object, as RelStorage's blob_chunk rows do
    sql(server, "CREATE TABLE kept (note text, chunk oid); "
                "INSERT INTO kept VALUES ('before the backup', lo_from_bytea(0, 'a blob chunk'))")
    status, log, _ = command(server, "backup")
    assert status == 0, log
    (dump,) = re.findall(r"wrote (zope-\d{4}(?:-\d\d){5}\.dump) \(\d+ bytes\)", log)

    sql(server, "SELECT lo_unlink(chunk) FROM kept; "
                "UPDATE kept SET note = 'after the backup', chunk = lo_from_bytea(0, 'a later chunk')")
    status, log, _ = command(server, "restore")
    assert status == 1 and "database zope is not empty (1 tables)" in log, log

    # another session in the database: refused, then ended by --force
    run("podman", "exec", "-d", server["server"], "psql", "-U", "zope", "-d", "zope", "-c",
        "SELECT pg_sleep(300)")
    wait_for(lambda: sql(server, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
             == "1", 30, "the other session")
    status, log, _ = command(server, "restore", dump)
    assert status == 1 and "database zope is in use (1 other sessions)" in log, log
    status, log, _ = command(server, "restore", "--force", dump)
    assert status == 0, log
    assert "--force: ending 1 other sessions of zope" in log and f"restored {dump} into zope" in log
    assert sql(server, "SELECT note || ': ' || convert_from(lo_get(chunk), 'UTF8') FROM kept") == \
        "before the backup: a blob chunk"
    # the later chunk, referred to by no row after the restore, removed by vacuumlo
    assert sql(server, "SELECT count(*) FROM pg_largeobject_metadata") == "1"
    status, _, listed = command(server, "restore", "--list")
    assert status == 0 and listed.split() == [dump]
