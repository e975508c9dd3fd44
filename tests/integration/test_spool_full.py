"""A full disk under the request spool: a large body gets 507 with a reason, nothing of it
reaches Zope, the server stays up and serves, and the partial spool file is gone. The spool
directory is a real tmpfs (TMPDIR of the server), mounted for the test; CI runs as root.
Zope's publishes are counted from its IPubStart events (``tests.support.published``).
"""

import os
import shutil
import subprocess
import time

import httpx
import pytest

from tests.robustness import ROWS
from tests.support.instance import ADMIN, ROOT, copy_instance_data, http_server, new_instance
from tests.support.latency import PageProbe
from tests.support.published import SITE_ZCML, published
from tests.support.results import record
from tests.support.server import ServerProcess
from tests.support.slow import RssSampler

MB = 1024 * 1024
FIGURES = ROWS["spool_full"].figures


@pytest.fixture(scope="module")
def small_tmp(tmp_path_factory):
    mount = tmp_path_factory.mktemp("spool-tmpfs")
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs and needs root (CI and make test run as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FIGURES['spool_mb']}m", "tmpfs", str(mount)],
                   check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture(scope="module")
def spool_server(servers, small_tmp, site_id):
    """Two publisher threads, bodies over 64 KB spooled to TMPDIR (the tmpfs), Zope's publishes
    logged (SITE_ZCML)."""
    directory = servers.tmp.mktemp("spool-full")
    conf = new_instance(directory, http_server(0), "server-threads 2\nrequest-spool-threshold 64KB")
    copy_instance_data(servers.template["directory"], directory)
    (directory / "etc" / "site.zcml").write_text(SITE_ZCML)
    env = dict(os.environ, TMPDIR=str(small_tmp), PYTHONPATH=str(ROOT))
    server = ServerProcess(conf, env=env)
    servers.running.append(server)
    server.start()
    assert httpx.request("MKCOL", server.url("/spool/"), auth=ADMIN).status_code == 201
    # The first rendering of the front page compiles its templates: before the baseline.
    assert httpx.get(server.url(f"/{site_id}"), timeout=30).status_code == 200
    return server


def _used(path):
    return shutil.disk_usage(path).used


def test_body_larger_than_the_spool_disk_gets_507_and_nothing_is_left(spool_server, small_tmp,
                                                                      admin_auth, site_id):
    before = _used(small_tmp)
    body = os.urandom(MB) * FIGURES["body_mb"]  # more than the spool disk holds
    with PageProbe(spool_server.url(f"/{site_id}")) as probe:
        probe.baseline(10)
        start = probe.mark()
        with RssSampler(spool_server.rss, interval=0.05) as rss:
            response = httpx.put(spool_server.url("/spool/target.bin"), content=body,
                                 auth=admin_auth, timeout=30)
        assert response.status_code == 507
        assert "no space left" in response.text
        deadline = time.monotonic() + 5
        while _used(small_tmp) > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _used(small_tmp) <= before  # the partial spool file was removed
        assert os.listdir(small_tmp) == []
        probe.wait_samples(5, after=start)
        verdict = probe.verdict("during and after the full spool", start)
    growth = (rss.peak - rss.samples[0]) / MB
    record("spool_full", "body_larger_than_the_spool", rss_growth_mb=round(growth, 1),
           rss_samples=len(rss.samples), **verdict.figures())
    print(f"RSS +{growth:.1f} MB; {verdict.summary()}")
    verdict.check()
    # A body held in memory instead of spooled would add its whole size (FIGURES["body_mb"]).
    assert growth < FIGURES["rss_mb"], f"server RSS grew by {growth:.1f} MB during the upload"
    assert "cannot spool a request body" in spool_server.log_text()
    # The pages above were published after the PUT was refused: Zope's count is complete.
    assert published(spool_server.event_log.read_text(errors="replace"), "/spool/target.bin") == 0


def test_a_body_that_fits_is_still_stored(spool_server, admin_auth):
    body = b"y" * (2 * MB)
    response = httpx.put(spool_server.url("/spool/fits.bin"), content=body, auth=admin_auth, timeout=30,
                         headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text  # a new file
    assert httpx.get(spool_server.url("/spool/fits.bin"), auth=admin_auth).content == body
