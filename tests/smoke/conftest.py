"""Smoke tests of the compose stack, all through the TLS front (`make smoke`, run by `make test`).

`make smoke` starts the stack as compose project "txzsmoke" on SMOKE_FRONT_PORT with a fresh
admin password (SMOKE_ADMIN_PASSWORD), runs these tests and removes the stack. The client trusts
only the generated development CA (compose/certs/ca.crt): no certificate check is skipped.
"""

import os
import pathlib
import ssl
import subprocess

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CA = ROOT / "compose" / "certs" / "ca.crt"
DOCKER = "/usr/bin/docker"
PASSWORD = "smoke-Secret-1"
#: the stack's UI (compose/stack.sh UI): classic, the site at /Plone; volto, Volto at the root and
#: the site's REST API at /++api++ (`make smoke-volto`)
UI = os.environ.get("UI", "classic")
#: where the site's REST API is through the front
SITE_API = "/++api++" if UI == "volto" else "/Plone"
#: a cheap page of an instance through the front (with Volto every path outside /++api++ is Volto's)
PROBE = "/++api++" if UI == "volto" else "/Plone/ok"
USERS = {"editor": ["Member", "Editor", "Contributor"], "reviewer": ["Member", "Reviewer"],
         "member": ["Member"]}


def pytest_collection_modifyitems(config, items):
    """Without the stack, skip the tests that need it (modules that set NEEDS_STACK = False only
    need the built images); a module with STACK_STORAGE runs only against a stack on that
    storage (STORAGE, default zeo). SMOKE_ONLY=images or SMOKE_ONLY=stack keeps only those modules:
    `make smoke` runs the image tests before it starts the stack, so that their containers (a
    Plone site made in each of several) do not load the machine while the stack is measured."""
    only = os.environ.get("SMOKE_ONLY")
    if only:
        assert only in ("images", "stack"), f"SMOKE_ONLY={only}: images or stack"
        keep, drop = [], []
        for item in items:
            (keep if getattr(item.module, "NEEDS_STACK", True) == (only == "stack") else drop).append(item)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    # a module for one storage of the stack (STACK_STORAGE) runs only against a stack on it:
    # the other stack's run deselects it (`make smoke-relstorage` runs test_relstorage.py)
    storage = os.environ.get("STORAGE", "zeo")
    other = [item for item in items if getattr(item.module, "STACK_STORAGE", storage) != storage]
    # likewise a module for one UI (STACK_UI, default classic): `make smoke-volto` runs test_volto_ui.py
    other += [item for item in items if getattr(item.module, "STACK_UI", "classic") != UI]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]
    if not os.environ.get("SMOKE_FRONT_PORT"):
        skip = pytest.mark.skip(reason="needs the compose stack: run `make smoke`")
        for item in items:
            if getattr(item.module, "NEEDS_STACK", True):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def port():
    return int(os.environ["SMOKE_FRONT_PORT"])


@pytest.fixture(scope="session")
def base_url(port):
    return f"https://localhost:{port}"


@pytest.fixture(scope="session")
def ssl_context():
    context = ssl.create_default_context(cafile=str(CA))
    return context


@pytest.fixture(scope="session")
def admin():
    return ("admin", os.environ["SMOKE_ADMIN_PASSWORD"])


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool(base_url, ssl_context):
    """Wait until the front balances over both instances (instance2 starts after instance1 and
    joins the pool after two passed health checks)."""
    import time
    seen, deadline = set(), time.monotonic() + 180
    with httpx.Client(base_url=base_url, verify=ssl_context, timeout=10) as probe:
        while seen != {"instance1", "instance2"}:
            assert time.monotonic() < deadline, f"only {seen} answered through the front"
            try:
                seen.add(probe.get(PROBE, headers={"Connection": "close"}).headers.get(
                    "X-Txzserver-Instance"))
            except httpx.HTTPError:
                pass
            time.sleep(0.2)


@pytest.fixture(scope="session")
def client(base_url, ssl_context):
    with httpx.Client(base_url=base_url, verify=ssl_context, http2=True, timeout=60) as c:
        yield c


def smoke_env():
    """The environment `make smoke` starts the stack with: project txzsmoke, its port and admin
    password (so that the tests also work when run alone against `make smoke-up`)."""
    env = dict(os.environ)
    env.setdefault("COMPOSE_PROJECT_NAME", "txzsmoke")
    env.setdefault("FRONT_PORT", os.environ.get("SMOKE_FRONT_PORT", "18443"))
    if os.environ.get("SMOKE_ADMIN_PASSWORD"):
        env.setdefault("ADMIN_PASSWORD", os.environ["SMOKE_ADMIN_PASSWORD"])
    return env


def stack(*args, check=True):
    """compose/stack.sh ARGS for the smoke project; stdout as text."""
    result = subprocess.run([str(ROOT / "compose" / "stack.sh"), *args], check=check, env=smoke_env(),
                            capture_output=True, text=True, timeout=300)
    return result.stdout


def compose(*args, check=True):
    """compose/stack.sh compose ARGS for the smoke project; stdout as text."""
    return stack("compose", *args, check=check)


@pytest.fixture
def backups(tmp_path):
    """A host directory for /backups, owned by the image's uid 500 as the docs say."""
    directory = tmp_path / "backups"
    directory.mkdir()
    os.chown(directory, 500, 500)
    return directory


def compose_run(*args):
    """`compose/stack.sh compose run ARGS` for the smoke project: the CompletedProcess."""
    return subprocess.run([str(ROOT / "compose" / "stack.sh"), "compose", "run", *args], env=smoke_env(),
                          capture_output=True, text=True, timeout=600, check=False)


def container(service):
    """Id of the container of a compose service."""
    return compose("ps", "-q", service).strip()


def api(client, method, path, user, **kwargs):
    """A plone.restapi call through the front; asserts success."""
    response = client.request(method, path, auth=user, headers={"Accept": "application/json"}, **kwargs)
    assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text[:300]}"
    return response


@pytest.fixture(scope="session")
def people(client, admin):
    """editor, reviewer and member, made once through @users."""
    for name, roles in USERS.items():
        known = client.get(f"{SITE_API}/@users/{name}", auth=admin, headers={"Accept": "application/json"})
        if known.status_code == 404:
            api(client, "POST", f"{SITE_API}/@users", admin, json={
                "username": name, "password": PASSWORD, "email": f"{name}@example.org", "roles": roles})
    return {name: (name, PASSWORD) for name in USERS}
