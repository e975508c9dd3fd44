"""Backup, delete, restore, read again on the podman stack (`make k8s-smoke`, last: it stops
and starts ZEO and the instances).

The backup round trip (components/backup-zeo, config/kubernetes/restore/zeo): a Document made,
the backup CronJob's pod run as rendered (ZEO's volume read-only, the backup volume), a second
Document made and the first deleted; the restore Job's pod refused while ZEO runs (Data.fs
locked), then, with ZEO and the instances stopped, it restores; ZEO and the instances started
again serve the first Document and not the second. ZEO's data and the backups are podman named
volumes, as their PersistentVolumeClaims.
"""

import secrets
import time

import pytest

from tests.kube.kubestack import INSTANCES, api, ready, run_once, site_served, startup_budget, summary
from tests.kube.manifests import find, render_variant
from tests.kube.podman import run, wait_for

pytestmark = [pytest.mark.timeout(1200)]

# --- backup, delete, restore, read again ---------------------------------------------------------

def document_status(stack, pod, name):
    return api(stack, pod, "GET", f"/Plone/{name}")[0]


def test_backup_delete_restore_read_again(stack):
    """The round trip an operator runs (docs/operators/backups.md): the CronJob's pod backs up the
    live ZEO server; the restore Job refuses while ZEO holds Data.fs, and restores once ZEO and
    the instances are stopped; started again, they serve the backup's state."""
    kept, later = f"kept-{secrets.token_hex(4)}", f"later-{secrets.token_hex(4)}"
    status, _ = api(stack, "instance-1", "POST", "/Plone", {"@type": "Document", "id": kept,
                                                            "title": "Kept through a restore"})
    assert status == 201
    started = time.monotonic()
    code, log = run_once(stack, find(stack["objects"], "CronJob", "backup-zeo"), "backup-zeo")
    assert code == 0 and "wrote full backup" in log and "files copied" in log, log[-3000:]
    backed_up = time.monotonic() - started
    status, _ = api(stack, "instance-1", "POST", "/Plone", {"@type": "Document", "id": later,
                                                            "title": "Made after the backup"})
    assert status == 201
    assert api(stack, "instance-2", "DELETE", f"/Plone/{kept}")[0] == 204
    wait_for(lambda: document_status(stack, "instance-1", kept) == 404, 15,
             f"/Plone/{kept} gone on instance-1", interval=0.5)

    restore_objects = render_variant(stack["tmp"] / "restore", [], resources=("restore/zeo",),
                                     images=stack["overrides"])
    restore = find(restore_objects, "Job", "restore-zeo")
    code, log = run_once(stack, restore, "restore-zeo-refused")
    assert code == 1 and "is in use (locked)" in log, log[-3000:]

    pods = (*INSTANCES, "zeo")
    run("podman", "pod", "stop", *pods, timeout=180)
    started = time.monotonic()
    code, log = run_once(stack, restore, "restore-zeo")
    assert code == 0 and "restored /data/filestorage/Data.fs" in log, log[-3000:]
    restored = time.monotonic() - started
    run("podman", "pod", "start", *pods, timeout=180)
    for pod in INSTANCES:
        wait_for(lambda: ready(stack, pod) and site_served(stack, pod), startup_budget(stack["objects"]),
                 f"{pod} serving /Plone after the restore")
        document = wait_for(lambda: (lambda r: r[1] if r[0] == 200 else None)(
            api(stack, pod, "GET", f"/Plone/{kept}")), 60, f"/Plone/{kept} through {pod}")
        assert document["title"] == "Kept through a restore"
        assert document_status(stack, pod, later) == 404
    summary(stack, f"backup: the CronJob's pod backed up the live ZEO in {backed_up:.1f} s; the restore "
                   f"Job refused while ZEO ran (Data.fs locked), restored in {restored:.1f} s with ZEO and "
                   f"the instances stopped; both serve /Plone/{kept} again and not /Plone/{later}")
