"""The upgrade Job on the podman stack (`make k8s-smoke`, after test_podman.py).

The upgrade Job: a step made pending in the site (txzserver:default back at 1000) and the
upgrade lock held (tests/kube/smoke_upgrade.py); two pods of the rendered upgrade Job started
at once both wait; once the lock is released, one runs the step and commits, the other waits
for it, finds nothing pending and exits 0; one upgrade committed, nothing pending after.
"""

import pathlib
import time

import pytest
import yaml

from tests.kube.kubestack import exited, in_instance, startup_budget, summary
from tests.kube.manifests import find
from tests.kube.pods import as_pod, mounted_config_maps
from tests.kube.podman import logs, run, wait_for

pytestmark = [pytest.mark.timeout(900)]

UPGRADE_SCRIPT = pathlib.Path(__file__).with_name("smoke_upgrade.py")
UPGRADE_STEP = "txzserver:default 1000 -> 1001: Add the registry record txzserver.canonical_url"
UPGRADE_PODS = ("upgrade-1", "upgrade-2")

# the upgrade Job -----------------------------------------------------------------------------

def test_two_upgrade_jobs_at_once_run_the_pending_step_once(stack):
    """The rendered upgrade Job's pod twice at once (its retry overlapping its first pod, or the
    Jobs of two image versions) on a step made pending in the site, both started while the lock
    is held (smoke_upgrade.py): both wait; once it is released one runs the step and commits, the
    other waits for that run, finds nothing pending and exits 0 too; one upgrade committed."""
    held = in_instance(stack, "instance-1", "hold", script=UPGRADE_SCRIPT)
    assert held["pending"] == [UPGRADE_STEP] and held["version"] == "1000", held
    objects = stack["objects"]
    pods = [as_pod(find(objects, "Job", "upgrade"), name, objects, stack["values"]) for name in UPGRADE_PODS]
    manifest = stack["tmp"] / "upgrade.yaml"
    manifest.write_text(yaml.safe_dump_all(mounted_config_maps(pods, objects) + pods))
    containers = [f"{pod}-upgrade" for pod in UPGRADE_PODS]
    started = time.monotonic()
    run("podman", "kube", "play", "--network", stack["network"], str(manifest), timeout=180)
    try:
        for container in containers:
            wait_for(lambda: "held by the smoke test" in logs(container), startup_budget(objects),
                     f"{container} waiting for the upgrade lock")
        in_instance(stack, "instance-1", "release", script=UPGRADE_SCRIPT)
        for container in containers:
            assert wait_for(lambda: exited(container), startup_budget(objects),
                            f"{container} to finish") == ("exited", 0), logs(container)
        outputs = {container: logs(container) for container in containers}
    finally:
        for container in containers:
            (stack["logs"] / f"{container}.log").write_text(logs(container))
        run("podman", "kube", "down", str(manifest), check=False, timeout=180)
    ran = [container for container, output in outputs.items() if f"running {UPGRADE_STEP}" in output]
    assert len(ran) == 1, outputs
    (other,) = set(containers) - set(ran)
    assert "nothing pending (another run upgraded it while this one waited)" in outputs[other]
    assert "site /Plone: 1 upgrade step(s) run and committed" in outputs[ran[0]]
    done = in_instance(stack, "instance-1", "done", script=UPGRADE_SCRIPT)
    assert done["pending"] == [] and done["version"] == "1001", done
    assert len(done["upgrades"]) == 1 and "1 step(s)" in done["upgrades"][0], done
    summary(stack, f"two upgrade Jobs at once: {ran[0]} ran the step, {other} waited and found "
                   f"nothing pending, {time.monotonic() - started:.1f} s from their start")


