"""Every service of the compose stack is confined: read-only root filesystem, no capabilities,
no privilege gain, a memory limit, non-root processes. Checked twice: in the configuration compose
renders (compose/stack.sh config, with the smoke stack's environment) and in the running stack.
With STORAGE=relstorage (`make smoke-relstorage`) the stack runs PostgreSQL instead of ZEO; the zeo
service stays in the rendered config with no container (scale 0), so it is checked there only."""

import json
import os
import re
import subprocess

import pytest

from .conftest import DOCKER, container, stack

RELSTORAGE = os.environ.get("STORAGE") == "relstorage"
SERVICES = ("postgresql" if RELSTORAGE else "zeo", "broker", "instance1", "instance2", "front")
RENDERED = SERVICES + (("zeo",) if RELSTORAGE else ())
UNITS = {"": 1, "b": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30}


def rendered_config():
    """compose/stack.sh config as a dict. docker-compose v1 has no JSON output; it is Python with
    PyYAML (Debian's python3-yaml), so its interpreter reads the YAML when the venv cannot."""
    text = stack("config")
    try:
        import yaml
    except ImportError:
        out = subprocess.run(["/usr/bin/python3", "-c", "import json, sys, yaml; "
                              "json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                             input=text, check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def services():
    config = rendered_config()["services"]
    assert set(config) == set(RENDERED)
    return config


def memory_bytes(value):
    """A compose size (2g, 256m, 1073741824) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([bkmg]?)b?", str(value).lower()).groups()
    return int(number) * UNITS[unit]


@pytest.mark.parametrize("name", RENDERED)
def test_rendered_config_confines_the_service(services, name):
    service = services[name]
    assert service.get("read_only") is True, service
    assert service.get("cap_drop") == ["ALL"], service
    assert not service.get("cap_add"), service
    assert not service.get("privileged"), service
    assert "no-new-privileges:true" in service.get("security_opt", []), service
    limit = memory_bytes(service["mem_limit"])
    assert 64 * 2 ** 20 <= limit <= 4 * 2 ** 30, service["mem_limit"]
    # writable places: volumes and a size-limited /tmp tmpfs (tmpfs is memory: counted in the limit)
    assert any(t.startswith("/tmp:") and "size=" in t for t in service.get("tmpfs", [])), service


def test_instances_have_room_for_the_200mb_upload(services):
    """plone.restapi decodes the base64 upload in memory: 1.28 GB peak in test_streaming."""
    for name in ("instance1", "instance2"):
        assert memory_bytes(services[name]["mem_limit"]) >= 2 * 2 ** 30


def docker(*args, check=True):
    return subprocess.run([DOCKER, *args], check=check, capture_output=True, text=True, timeout=60)


def statuses(cid):
    """(pid, name, uids, CapEff, CapBnd, NoNewPrivs) of every process in the container (the
    exec'd shell included: it runs as the container's user too)."""
    out = docker("exec", cid, "sh", "-c", "cat /proc/[0-9]*/status 2>/dev/null", check=False).stdout
    processes = []
    for block in out.split("Name:")[1:]:
        fields = dict(line.split(":", 1) for line in ("Name:" + block).splitlines() if ":" in line)
        processes.append({key: fields[key].strip() for key in
                          ("Name", "Pid", "Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs")})
    return processes


@pytest.mark.parametrize("name", SERVICES)
def test_running_container_is_confined(name):
    cid = container(name)
    inspect = json.loads(docker("inspect", cid).stdout)[0]["HostConfig"]
    assert inspect["ReadonlyRootfs"] is True
    assert inspect["CapDrop"] == ["ALL"] and not inspect["CapAdd"]
    assert inspect["Memory"] > 0
    # the root filesystem really is read-only; /tmp (tmpfs) is writable
    touched = docker("exec", cid, "touch", "/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr, touched
    for path in ("/usr/local/x", "/etc/x"):
        assert docker("exec", cid, "touch", path, check=False).returncode != 0, path
    docker("exec", cid, "sh", "-c", "touch /tmp/x && rm /tmp/x")
    processes = statuses(cid)
    assert any(p["Pid"] == "1" for p in processes), processes
    for process in processes:
        assert all(uid != "0" for uid in process["Uid"].split()), process
        assert int(process["CapEff"], 16) == 0 and int(process["CapPrm"], 16) == 0, process
        assert int(process["CapBnd"], 16) == 0, process
        assert process["NoNewPrivs"] == "1", process
    print(f"\n{name}: " + ", ".join(
        f"{p['Pid']} {p['Name']} uid {p['Uid'].split()[0]} gid {p['Gid'].split()[0]}" for p in processes))
