"""The plone image's commands and variables that test_image.py leaves out: `addzopeuser`,
`create-site`, `console` (Python on stdin), `pack` (FileStorage) and `CORS_ALLOW_ORIGIN`
(`DELETE_EXISTING`: test_image_delete_existing.py; the rest: test_image_env.py).

One FileStorage volume goes through them in file order (tests/smoke/imagevolume.py). Only the
built image is needed, not the compose stack; ports are published on 127.0.0.1.
"""

import pytest

from .imagevolume import ImageVolume, SHOW_MARKER, fetch
from .test_image import docker, ok, wait_http

NEEDS_STACK = False
USER, USER_PASSWORD = "boss", "Boss-Secret-7"
ORIGIN = "http://app.example.test"


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


@pytest.fixture(scope="module")
def volume():
    with ImageVolume("cmd") as volume:
        yield volume


def data_fs_size(volume):
    return int(ok(volume.once("stat", "-c", "%s", "/data/filestorage/Data.fs", timeout=60)).stdout)


def test_addzopeuser_on_a_new_volume(volume):
    result = ok(volume.once("addzopeuser", USER, USER_PASSWORD, timeout=180))
    assert f"added Zope user {USER} (Manager)" in result.stdout
    wrong = volume.once("addzopeuser", "only-a-name", timeout=180)
    assert wrong.returncode != 0 and "usage: addzopeuser USER PASSWORD" in wrong.stderr


def test_create_site(volume):
    refused = volume.once("create-site", timeout=60)
    assert refused.returncode == 2 and "create-site needs SITE" in refused.stderr
    assert "site /Plone created" in ok(volume.once("create-site", env=["SITE=Plone"])).stdout
    assert "site /Plone exists already" in ok(volume.once("create-site", env=["SITE=Plone"])).stdout


def test_console_runs_python_from_stdin_with_app_bound(volume):
    volume.set_marker()
    out = ok(volume.once("console", stdin=SHOW_MARKER, timeout=180)).stdout
    assert "'Plone'" in out.split("IDS", 1)[1].splitlines()[0]
    assert out.split("MARK ", 1)[1].splitlines()[0] == "here"
    # a script that fails ends the command with its traceback and exit 1, and commits nothing
    failed = volume.once("console", stdin="import transaction\napp.Plone.title = 'not kept'\n"
                         "raise ValueError('the script stops here')\ntransaction.commit()\n",
                         timeout=180)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "ValueError: the script stops here" in failed.stderr


def test_added_user_authenticates_and_site_answers(volume):
    with volume.serving("SITE=Plone") as name:
        url = wait_http(name, 8080, "/Plone")
        root = url.removesuffix("/Plone")
        assert fetch(f"{root}/manage_main", auth=(USER, USER_PASSWORD))[0] == 200
        assert fetch(f"{root}/manage_main", auth=(USER, "wrong-password"))[0] == 401
        assert fetch(f"{root}/manage_main")[0] == 401
        # the marker the console committed is served
        assert fetch(f"{url}/txz-marker")[::2] == (200, b"here")
        # no CORS_ALLOW_ORIGIN: no CORS headers
        status, headers, _ = fetch(url, headers={"Origin": ORIGIN, "Accept": "application/json"})
        assert status == 200 and headers.get("Access-Control-Allow-Origin") is None
        # Data.fs existed: no admin user was generated
        assert "generated password" not in docker("logs", name).stderr


def test_pack_removes_old_revisions(volume):
    before = data_fs_size(volume)
    kept = ok(volume.once("pack", "7", timeout=180))
    assert "keeping 7 days of history" in kept.stdout and "packed" in kept.stdout
    assert data_fs_size(volume) == before  # every revision is younger than 7 days
    # the default keeps none, as zeopack and plone-backend; the FileStorage is packed without Zope
    result = ok(volume.once("pack", timeout=300))
    assert "packing /data/filestorage/Data.fs, keeping 0 days of history" in result.stdout
    assert result.stdout.rstrip().endswith("packed") and "ZODB closed" not in result.stderr
    after = data_fs_size(volume)
    print(f"\nData.fs: {before} bytes before `pack 0`, {after} after")
    assert after < before, (before, after)  # the revisions the console and create-site replaced
    listing = ok(volume.once("ls", "/data/filestorage", timeout=60)).stdout.split()
    assert listing.count("Data.fs.old") == 1
    # the packed database still holds the site and what was committed last
    assert volume.marker() == "here"


def test_cors_allow_origin(volume):
    with volume.serving("SITE=Plone", f"CORS_ALLOW_ORIGIN={ORIGIN}", "CORS_MAX_AGE=1234") as name:
        url = wait_http(name, 8080, "/Plone")
        status, headers, _ = fetch(url, method="OPTIONS", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Accept"})
        assert status == 200, status
        assert headers.get("Access-Control-Allow-Origin") == ORIGIN
        assert "GET" in headers.get("Access-Control-Allow-Methods", "")
        assert headers.get("Access-Control-Max-Age") == "1234"
        status, headers, _ = fetch(url, headers={"Origin": ORIGIN, "Accept": "application/json"})
        assert status == 200
        assert headers.get("Access-Control-Allow-Origin") == ORIGIN
        assert headers.get("Access-Control-Allow-Credentials") == "true"
        status, headers, _ = fetch(url, headers={"Origin": "http://other.example.test",
                                                 "Accept": "application/json"})
        assert headers.get("Access-Control-Allow-Origin") is None
