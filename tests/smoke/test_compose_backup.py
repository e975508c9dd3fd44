"""The compose stack's backup commands, as docs/operators/backups.md ("With compose") gives them,
run against the live stack.

ZEO (`make smoke`): a Document made through the front, then `compose/stack.sh compose run --rm
--no-deps -v DIR:/backups zeo backup` while ZEO serves; the same image's `restore` puts that
backup into a new, empty volume, where the image's console (a FileStorage on it) finds the
Document, and `restore` without --force is refused on it afterwards (it holds data). The stack's
own volume is not restored over: the other smoke tests use the stack meanwhile (the procedure's
`restore --force` with the services stopped is what the Kubernetes round trip runs).
RelStorage's command: tests/smoke/test_relstorage.py (`make smoke-relstorage`).
"""

import secrets
import subprocess

from .conftest import DOCKER, api, compose_run
from .test_image import IMAGE


def test_zeo_backup_of_the_live_stack_restores_into_a_new_volume(client, admin, backups):
    name = f"backed-up-{secrets.token_hex(4)}"
    api(client, "POST", "/Plone", admin, json={"@type": "Document", "id": name, "title": "Backed up"})
    backup = compose_run("--rm", "--no-deps", "-v", f"{backups}:/backups", "zeo", "backup")
    output = backup.stdout + backup.stderr
    assert backup.returncode == 0 and "wrote full backup" in output, output[-3000:]
    assert list(backups.rglob("*.fsz")), sorted(backups.rglob("*"))

    volume = f"txzsmoke-restored-{secrets.token_hex(4)}"
    subprocess.run([DOCKER, "volume", "create", volume], check=True, capture_output=True)
    try:
        def image(*args, stdin=None):
            return subprocess.run([DOCKER, "run", "--rm", "-i", "-v", f"{volume}:/data", "-v",
                                   f"{backups}:/backups", IMAGE, *args], input=stdin,
                                  capture_output=True, text=True, timeout=300, check=False)
        restore = image("restore")
        assert restore.returncode == 0, restore.stdout + restore.stderr[-3000:]
        console = image("console", stdin=f"print('FOUND', {name!r} in app.Plone.objectIds())\n")
        assert "FOUND True" in console.stdout, console.stdout[-2000:] + console.stderr[-3000:]
        again = image("restore")
        assert again.returncode == 1 and "--force" in again.stdout + again.stderr, again.stderr[-3000:]
    finally:
        subprocess.run([DOCKER, "volume", "rm", "-f", volume], capture_output=True)
