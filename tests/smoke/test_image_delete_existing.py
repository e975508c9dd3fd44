"""`DELETE_EXISTING` of the plone image, with `create-site` and at an instance's start: false (or
unset) keeps the site and what it holds, true replaces it with a new one. A volume of its own
(tests/smoke/imagevolume.py) with a site made first; the marker File tells the old site from a
new one, read by a console or over HTTP while the instance serves."""

import pytest

from .imagevolume import ImageVolume, fetch
from .test_image import docker, ok, wait_http

NEEDS_STACK = False


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


@pytest.fixture(scope="module")
def volume():
    with ImageVolume("delete") as volume:
        assert "site /Plone created" in ok(volume.once("create-site", env=["SITE=Plone"])).stdout
        yield volume


def test_delete_existing_false_keeps_the_site(volume):
    volume.set_marker()
    result = ok(volume.once("create-site", env=["SITE=Plone", "DELETE_EXISTING=false"]))
    assert "deleted" not in result.stdout and "site /Plone exists already" in result.stdout
    assert volume.marker() == "here"


def test_delete_existing_with_create_site_replaces_the_site(volume):
    volume.set_marker()
    result = ok(volume.once("create-site", env=["SITE=Plone", "DELETE_EXISTING=true"]))
    assert "deleted the existing site /Plone" in result.stdout and "site /Plone created" in result.stdout
    assert volume.marker() == "None"


def test_delete_existing_at_start_replaces_the_site(volume):
    volume.set_marker()
    with volume.serving("SITE=Plone", "DELETE_EXISTING=false") as name:
        url = wait_http(name, 8080, "/Plone")
        assert fetch(f"{url}/txz-marker")[::2] == (200, b"here")
        assert "deleted the existing site" not in docker("logs", name).stdout
    with volume.serving("SITE=Plone", "DELETE_EXISTING=TRUE") as name:
        url = wait_http(name, 8080, "/Plone")
        assert "deleted the existing site /Plone" in docker("logs", name).stdout
        assert fetch(f"{url}/txz-marker")[0] == 404
