"""The backup CronJobs (components/backup-zeo in the dev overlay, components/backup-postgresql in
production) and the restore Jobs applied by hand (config/kubernetes/restore/{zeo,postgresql}), as
rendered: where they read and write, their retention, who they reach, and the PostgreSQL image's
own tag. Confinement, limits and the strict schemas of the CronJobs are test_manifests.py's
checks on every workload of the overlays; the restore Jobs are checked here against the same
confinement as the CronJobs and against the schemas. `make kube-lint` runs this module.
"""

import re
import subprocess

import pytest
import yaml

from tests.kube.manifests import (
    KUBECTL, KUSTOMIZE_ROOT, NAMESPACE, ROOT, by_kind, environment, find, pod_template, render,
    secret_of, who_reaches)

BACKUPS_CLAIM = "txzserver-backups"


@pytest.fixture(scope="module")
def restore_zeo():
    return render(KUSTOMIZE_ROOT / "restore" / "zeo")


@pytest.fixture(scope="module")
def restore_postgresql():
    return render(KUSTOMIZE_ROOT / "restore" / "postgresql")


def only_container(workload):
    spec = pod_template(workload)["spec"]
    (container,) = spec["containers"]
    return spec, container


def mounts_of(spec, container):
    """{mount path: (volume, read-only)} of a container."""
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    return {m["mountPath"]: (volumes[m["name"]], m.get("readOnly", False))
            for m in container["volumeMounts"]}


def claim_at(spec, container, path):
    volume, read_only = mounts_of(spec, container)[path]
    claim = volume["persistentVolumeClaim"]
    return claim["claimName"], read_only, claim.get("readOnly", False)


def zeo_claim(objects):
    """The name of zeo-0's claim for /data: volume claim template, StatefulSet, ordinal 0."""
    zeo = find(objects, "StatefulSet", "zeo")
    template = zeo["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    spec, container = only_container(zeo)
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounted["/data"] == template
    return f"{template}-{zeo['metadata']['name']}-0"


def test_each_overlay_has_the_backup_of_its_storage(dev, production):
    assert set(by_kind(dev, "CronJob")) == {"pack", "backup-zeo"}
    assert set(by_kind(production, "CronJob")) == {"pack", "backup-postgresql"}
    for objects in (dev, production):
        claim = find(objects, "PersistentVolumeClaim", BACKUPS_CLAIM)
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert claim["spec"]["resources"]["requests"]["storage"]


@pytest.mark.parametrize("name", ["backup-zeo", "backup-postgresql"])
def test_backups_run_nightly_one_at_a_time(dev, production, name):
    cronjob = find(dev if name == "backup-zeo" else production, "CronJob", name)
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"] == "Etc/UTC"
    minute, hour, *rest = spec["schedule"].split()
    assert rest == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()  # daily
    # before the weekly pack (03:30 on Sundays), not at the same time
    assert find(dev, "CronJob", "pack")["spec"]["schedule"] != spec["schedule"]
    assert pod_template(cronjob)["spec"]["containers"][0]["args"] == ["backup"]


def test_zeo_backup_reads_the_zeo_volume_and_writes_the_backups(dev):
    cronjob = find(dev, "CronJob", "backup-zeo")
    spec, container = only_container(cronjob)
    env = environment(container, dev)
    assert container["image"].startswith("txzserver/plone:")
    # the ZEO server's claim, read-only twice (volume and mount): repozo only reads
    assert claim_at(spec, container, "/zeo") == (zeo_claim(dev), True, True)
    assert claim_at(spec, container, env["BACKUP_DIR"]) == (BACKUPS_CLAIM, False, False)
    # the paths of config/zeo.conf (the server's /data), seen under /zeo
    zeo_conf = (ROOT / "config" / "zeo.conf").read_text()
    assert "path /data/filestorage/Data.fs" in zeo_conf and "blob-dir /data/blobstorage" in zeo_conf
    assert (env["FILESTORAGE"], env["BLOBSTORAGE"]) == ("/zeo/filestorage/Data.fs", "/zeo/blobstorage")
    # a ReadWriteOnce volume: on the ZEO server's node
    (term,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    zeo_labels = pod_template(find(dev, "StatefulSet", "zeo"))["metadata"]["labels"]
    assert term["labelSelector"]["matchLabels"].items() <= zeo_labels.items()
    # uid 500 writes a fresh backup volume through its group
    assert spec["securityContext"]["fsGroup"] == 500 and spec["securityContext"]["runAsUser"] == 500


def test_retention_is_a_configmap_value(dev, production):
    for objects, name, keep in ((dev, "backup-zeo", 4), (production, "backup-postgresql", 7)):
        _, container = only_container(find(objects, "CronJob", name))
        (source,) = container["envFrom"]
        assert source["configMapRef"]["name"].startswith("txzserver-backup-")  # hashed: a change rolls
        env = environment(container, objects)
        assert int(env["BACKUP_KEEP"]) == keep
    assert int(environment(only_container(find(dev, "CronJob", "backup-zeo"))[1], dev)
               ["BACKUP_FULL_DAYS"]) == 7


def test_postgresql_backup_uses_the_instances_database_and_password(production):
    spec, container = only_container(find(production, "CronJob", "backup-postgresql"))
    assert container["image"].startswith("txzserver/postgresql:")
    env = environment(container, production)
    instance = environment(pod_template(find(production, "Deployment", "instance"))["spec"]
                           ["containers"][0], production)
    assert (env["PGHOST"], env["PGDATABASE"], env["PGUSER"]) == \
        (instance["RELSTORAGE_HOST"], instance["RELSTORAGE_DBNAME"], instance["RELSTORAGE_USER"])
    assert secret_of(spec, container, "PGPASSWORD") == ("txzserver-postgresql", "password")
    assert claim_at(spec, container, env["BACKUP_DIR"]) == (BACKUPS_CLAIM, False, False)
    assert spec["securityContext"]["fsGroup"] == 500  # the image's postgres group reads the 0440 file


def test_only_the_postgresql_backup_reaches_beyond_dns(dev, production):
    assert "backup-postgresql" in who_reaches(production, "postgresql", 5432)
    assert "backup-postgresql" not in who_reaches(production, "instance", 8080)
    assert "backup-zeo" not in who_reaches(dev, "zeo", 8100)  # it reads the volume, no network


# --- restore Jobs ----------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["zeo", "postgresql"])
def test_restore_kustomizations_validate(storage, tmp_path, request):
    objects = request.getfixturevalue(f"restore_{storage}")
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in objects] == [("Job", f"restore-{storage}")]
    assert objects[0]["metadata"]["namespace"] == NAMESPACE
    rendered = tmp_path / "restore.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run([str(KUBECTL.with_name("kubernetes-validate")), "--strict", "--quiet",
                             str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("storage, overlay", [("zeo", "dev"), ("postgresql", "production")])
def test_restore_jobs_are_confined_as_the_backups(storage, overlay, request):
    """Same image (and tag), pod and container security as the CronJob whose backups they read;
    run once (a refusal is final)."""
    job = request.getfixturevalue(f"restore_{storage}")[0]
    objects = request.getfixturevalue(overlay)
    backup_spec, backup = only_container(find(objects, "CronJob", f"backup-{storage}"))
    spec, container = only_container(job)
    assert container["image"] == backup["image"]
    assert container["securityContext"] == backup["securityContext"]
    for key in ("securityContext", "automountServiceAccountToken", "enableServiceLinks"):
        assert spec[key] == backup_spec[key], key
    assert set(container["resources"]) == {"requests", "limits"}
    assert job["spec"]["backoffLimit"] == 0 and spec["restartPolicy"] == "Never"
    assert container["args"] == ["restore", "--force"]
    # the backups read-only, volume and mount
    assert claim_at(spec, container, "/backups") == (BACKUPS_CLAIM, True, True)
    assert environment(container, [])["BACKUP_DIR"] == "/backups"


def test_restore_zeo_writes_the_zeo_volume_at_the_image_paths(restore_zeo, dev):
    spec, container = only_container(restore_zeo[0])
    # the image's defaults FILESTORAGE=/data/filestorage/Data.fs, BLOBSTORAGE=/data/blobstorage
    assert "FILESTORAGE" not in environment(container, [])
    assert claim_at(spec, container, "/data") == (zeo_claim(dev), False, False)


def test_restore_postgresql_targets_the_instances_database(restore_postgresql, production):
    spec, container = only_container(restore_postgresql[0])
    env = environment(container, [])
    backup = environment(only_container(find(production, "CronJob", "backup-postgresql"))[1], production)
    assert {key: env[key] for key in ("PGHOST", "PGDATABASE", "PGUSER")} == \
        {key: backup[key] for key in ("PGHOST", "PGDATABASE", "PGUSER")}
    assert secret_of(spec, container, "PGPASSWORD") == ("txzserver-postgresql", "password")
    # with the production overlay applied, its NetworkPolicies let the Job reach PostgreSQL. A
    # Job goes by its component label, backup-postgresql (the label that policy admits): the
    # backup CronJob of the same name is left out, so that the pod found is the restore Job's
    cronjob = ("CronJob", "backup-postgresql")
    others = [obj for obj in production if (obj["kind"], obj["metadata"]["name"]) != cronjob]
    assert "backup-postgresql" not in who_reaches(others, "postgresql", 5432)
    assert "backup-postgresql" in who_reaches(others + restore_postgresql, "postgresql", 5432)


# --- the PostgreSQL image's tag ----------------------------------------------------------------

def test_postgresql_image_has_its_own_tag(production, restore_postgresql):
    """POSTGRESQL_TAG (images/docker-bake.hcl): PostgreSQL's major version and our revision,
    the same in the compose file and the Kubernetes images; the app's tag is another."""
    bake = (ROOT / "images" / "docker-bake.hcl").read_text()
    (tag,) = re.findall(r'^variable "POSTGRESQL_TAG" \{ default = "([^"]+)" \}$', bake, re.MULTILINE)
    dockerfile = (ROOT / "images" / "postgresql" / "Dockerfile").read_text()
    major = re.search(r"postgresql-(\d+)", dockerfile)[1]
    assert re.fullmatch(rf"{major}-\d+", tag), tag
    assert '"${PREFIX}/postgresql:${POSTGRESQL_TAG}"' in bake
    compose = (ROOT / "compose" / "docker-compose.relstorage.yml").read_text()
    assert f"/postgresql:${{POSTGRESQL_TAG:-{tag}}}" in compose
    images = {image["name"]: image["newTag"] for image in yaml.safe_load(
        (KUSTOMIZE_ROOT / "components" / "images" / "kustomization.yaml").read_text())["images"]}
    assert images["txzserver/postgresql"] == tag != images["txzserver/plone"]
    server = pod_template(find(production, "StatefulSet", "postgresql"))["spec"]["containers"][0]
    assert server["image"] == f"txzserver/postgresql:{tag}"
    assert only_container(restore_postgresql[0])[1]["image"] == server["image"]
    build = (ROOT / "images" / "build.sh").read_text()
    assert "POSTGRESQL_TAG=${POSTGRESQL_TAG:-$(sed -n 's/^variable \"POSTGRESQL_TAG\"" in build
