"""The site and upgrade Jobs as the overlays render them: named by the plone image's tag
(config/kubernetes/job-names, so that a new image is a new Job and nothing is deleted by hand),
also under an operator's overlay on top of ours that sets `images:`; the upgrade Job runs
`upgrade` of the site the create-site Job makes, and the instances wait for it (UPGRADE_WAIT)
inside their startup probe's budget. `make kube-lint` runs it."""

import os

import yaml

from tests.kube.manifests import KUSTOMIZE_ROOT, environment, find, pod_template, render


def plone_tag(objects):
    image = pod_template(find(objects, "Deployment", "instance"))["spec"]["containers"][0]["image"]
    return image.rpartition(":")[2]


def test_the_upgrade_job_and_the_instances_wait_for_it(overlay):
    """`upgrade` of the site the create-site Job makes, retried on failure; the instances wait
    for it (UPGRADE_WAIT) well inside their startup probe's budget."""
    _, objects = overlay
    job = find(objects, "Job", "upgrade")
    spec = pod_template(job)["spec"]
    assert spec["containers"][0]["args"] == ["upgrade"] and spec["restartPolicy"] == "OnFailure"
    env = environment(spec["containers"][0], objects)
    site = environment(pod_template(find(objects, "Job", "create-site"))["spec"]["containers"][0], objects)
    assert env["SITE"] == site["SITE"] == "Plone" and "UPGRADE_DRY_RUN" not in env
    assert job["spec"]["backoffLimit"] >= 3  # the first install: the site comes later
    instance = pod_template(find(objects, "Deployment", "instance"))["spec"]["containers"][0]
    probe = instance["startupProbe"]
    wait = int(environment(instance, objects)["UPGRADE_WAIT"])
    assert 0 < wait <= probe["periodSeconds"] * probe["failureThreshold"] / 2


def test_jobs_are_named_by_the_image_tag(overlay):
    """config/kubernetes/job-names: a new image is a new Job (its template cannot change)."""
    _, objects = overlay
    tag = plone_tag(objects)
    names = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "Job"}
    assert names == {f"create-site-{tag}", f"upgrade-{tag}"}
    for name in names:  # a pod's name is the Job's and 6 characters
        assert len(name) <= 63 - 6 and name == name.lower(), name


def test_job_names_follow_an_images_override_of_an_overlay_on_top(tmp_path):
    """An operator's overlay on ours with `images:` and the transformer: the names follow its
    tag, the dev overlay's patch of create-site (by its base name) still applies."""
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [os.path.relpath(KUSTOMIZE_ROOT / "overlays" / "dev", directory)],
        "images": [{"name": "txzserver/plone", "newName": "registry.example/plone", "newTag": "2.0.1"}],
        "transformers": [os.path.relpath(KUSTOMIZE_ROOT / "job-names", directory)],
    }))
    objects = render(directory)
    assert plone_tag(objects) == "2.0.1"
    names = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "Job"}
    assert names == {"create-site-2.0.1", "upgrade-2.0.1"}
    site = environment(pod_template(find(objects, "Job", "create-site"))["spec"]["containers"][0], objects)
    assert "txzserver:example-rules" in site["PROFILES"]
