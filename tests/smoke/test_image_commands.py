"""The plone image's commands and variables that test_image.py leaves out: `addzopeuser`,
`create-site`, `console` (Python on stdin), `pack` (FileStorage), `DELETE_EXISTING` and
`CORS_ALLOW_ORIGIN` (the rest: test_image_env.py).

One FileStorage volume goes through them in file order, each step in a container of its own (a
FileStorage is opened by one process at a time). Only the built image is needed, not the compose
stack; ports are published on 127.0.0.1 and every container and the volume are removed at the end.
"""

import contextlib
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from .conftest import DOCKER
from .test_image import IMAGE, docker, ok, wait_http

NEEDS_STACK = False
RUN = uuid.uuid4().hex[:6]
VOLUME = f"txzsmoke-cmd-{RUN}"
USER, USER_PASSWORD = "boss", "Boss-Secret-7"
ORIGIN = "http://app.example.test"
NAMES = []
SET_MARKER = ("import transaction\n"
              "app.Plone.txz_marker = 'here'\n"
              "transaction.commit()\n")
SHOW_MARKER = ("from Acquisition import aq_base\n"
               "print('IDS', sorted(app.objectIds()))\n"
               "print('MARK', getattr(aq_base(app.Plone), 'txz_marker', None))\n")


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


@pytest.fixture(scope="module", autouse=True)
def volume():
    docker("volume", "create", VOLUME)
    try:
        yield VOLUME
    finally:
        for name in NAMES:
            docker("rm", "-fv", name, check=False)
        docker("volume", "rm", "-f", VOLUME, check=False)


def new_name():
    NAMES.append(f"txzsmoke-cmd-{RUN}-{len(NAMES)}")
    return NAMES[-1]


def env_args(env):
    return [arg for pair in env for arg in ("-e", pair)]


def once(*args, env=(), stdin=None, timeout=300):
    """Run the image once on the volume with ARGS as command; a named container, removed even
    when the client times out. The CompletedProcess (not checked)."""
    name = new_name()
    interactive = ["-i"] if stdin is not None else []
    try:
        return subprocess.run([DOCKER, "run", "--rm", *interactive, "--name", name, "-v", f"{VOLUME}:/data",
                               *env_args(env), IMAGE, *args],
                              input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        docker("rm", "-fv", name, check=False)


@contextlib.contextmanager
def serving(*env):
    """An instance on the volume, port 8080 published on 127.0.0.1; stopped and removed after."""
    name = new_name()
    docker("run", "-d", "--name", name, "-v", f"{VOLUME}:/data", "-p", "127.0.0.1::8080",
           *env_args(env), IMAGE)
    try:
        yield name
    finally:
        docker("stop", name, check=False, timeout=60)
        docker("rm", "-fv", name, check=False)


def fetch(url, method="GET", headers=None, auth=None):
    """(status, headers) of one request; HTTP errors are answers too."""
    handlers = []
    if auth:
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, url, *auth)
        handlers.append(urllib.request.HTTPBasicAuthHandler(manager))
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=30) as response:
            response.read()
            return response.status, response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers


def marker():
    out = ok(once("console", stdin=SHOW_MARKER, timeout=180)).stdout
    line = next(line for line in out.splitlines() if "MARK " in line)
    return line.split("MARK ", 1)[1].strip()


def data_fs_size():
    return int(ok(once("stat", "-c", "%s", "/data/filestorage/Data.fs", timeout=60)).stdout)


def test_addzopeuser_on_a_new_volume():
    result = ok(once("addzopeuser", USER, USER_PASSWORD, timeout=180))
    assert f"added Zope user {USER} (Manager)" in result.stdout
    wrong = once("addzopeuser", "only-a-name", timeout=180)
    assert wrong.returncode != 0 and "usage: addzopeuser USER PASSWORD" in wrong.stderr


def test_create_site():
    refused = once("create-site", timeout=60)
    assert refused.returncode == 2 and "create-site needs SITE" in refused.stderr
    assert "site /Plone created" in ok(once("create-site", env=["SITE=Plone"])).stdout
    assert "site /Plone exists already" in ok(once("create-site", env=["SITE=Plone"])).stdout


def test_console_runs_python_from_stdin_with_app_bound():
    ok(once("console", stdin=SET_MARKER, timeout=180))
    out = ok(once("console", stdin=SHOW_MARKER, timeout=180)).stdout
    assert "'Plone'" in out.split("IDS", 1)[1].splitlines()[0]
    assert out.split("MARK ", 1)[1].splitlines()[0] == "here"


def test_added_user_authenticates_and_site_answers():
    with serving("SITE=Plone") as name:
        url = wait_http(name, 8080, "/Plone")
        root = url.removesuffix("/Plone")
        assert fetch(f"{root}/manage_main", auth=(USER, USER_PASSWORD))[0] == 200
        assert fetch(f"{root}/manage_main", auth=(USER, "wrong-password"))[0] == 401
        assert fetch(f"{root}/manage_main")[0] == 401
        # no CORS_ALLOW_ORIGIN: no CORS headers
        status, headers = fetch(url, headers={"Origin": ORIGIN, "Accept": "application/json"})
        assert status == 200 and headers.get("Access-Control-Allow-Origin") is None
        # Data.fs existed: no admin user was generated
        assert "generated password" not in docker("logs", name).stderr


def test_delete_existing_false_keeps_the_site():
    ok(once("console", stdin=SET_MARKER, timeout=180))
    assert marker() == "here"
    result = ok(once("create-site", env=["SITE=Plone", "DELETE_EXISTING=false"]))
    assert "deleted" not in result.stdout and "site /Plone exists already" in result.stdout
    assert marker() == "here"


def test_delete_existing_with_create_site_replaces_the_site():
    ok(once("console", stdin=SET_MARKER, timeout=180))
    result = ok(once("create-site", env=["SITE=Plone", "DELETE_EXISTING=true"]))
    assert "deleted the existing site /Plone" in result.stdout and "site /Plone created" in result.stdout
    assert marker() == "None"


def test_delete_existing_at_start_replaces_the_site():
    ok(once("console", stdin=SET_MARKER, timeout=180))
    with serving("SITE=Plone", "DELETE_EXISTING=false") as name:
        wait_http(name, 8080, "/Plone")
        assert "deleted the existing site" not in docker("logs", name).stdout
    assert marker() == "here"
    with serving("SITE=Plone", "DELETE_EXISTING=TRUE") as name:
        wait_http(name, 8080, "/Plone")
        assert "deleted the existing site /Plone" in docker("logs", name).stdout
    assert marker() == "None"


def test_pack_removes_old_revisions():
    before = data_fs_size()
    kept = ok(once("pack", "7", timeout=180))
    assert "keeping 7 days of history" in kept.stdout and "packed" in kept.stdout
    assert data_fs_size() == before  # every revision is younger than 7 days
    # the default keeps none, as zeopack and plone-backend; the FileStorage is packed without Zope
    result = ok(once("pack", timeout=300))
    assert "packing /data/filestorage/Data.fs, keeping 0 days of history" in result.stdout
    assert result.stdout.rstrip().endswith("packed") and "ZODB closed" not in result.stderr
    after = data_fs_size()
    print(f"\nData.fs: {before} bytes before `pack 0`, {after} after")
    assert after < before * 0.8, (before, after)
    assert ok(once("ls", "/data/filestorage", timeout=60)).stdout.split().count("Data.fs.old") == 1
    # the packed database still serves the site
    assert marker() == "None"


def test_cors_allow_origin():
    with serving("SITE=Plone", f"CORS_ALLOW_ORIGIN={ORIGIN}", "CORS_MAX_AGE=1234") as name:
        url = wait_http(name, 8080, "/Plone")
        status, headers = fetch(url, method="OPTIONS", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Accept"})
        assert status == 200, status
        assert headers.get("Access-Control-Allow-Origin") == ORIGIN
        assert "GET" in headers.get("Access-Control-Allow-Methods", "")
        assert headers.get("Access-Control-Max-Age") == "1234"
        status, headers = fetch(url, headers={"Origin": ORIGIN, "Accept": "application/json"})
        assert status == 200
        assert headers.get("Access-Control-Allow-Origin") == ORIGIN
        assert headers.get("Access-Control-Allow-Credentials") == "true"
        status, headers = fetch(url, headers={"Origin": "http://other.example.test",
                                              "Accept": "application/json"})
        assert headers.get("Access-Control-Allow-Origin") is None
