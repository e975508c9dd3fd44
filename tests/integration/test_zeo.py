"""`mkinstance --zeo`: the instance is a ZEO client of a real ZEO server holding the Plone site."""

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.instance import TXZSERVER, copy_instance_data
from tests.support.server import ServerProcess, free_port, wait_for, port_is_free


@pytest.fixture(scope="module")
def zeo_server(tmp_path_factory, plone_template):
    directory = tmp_path_factory.mktemp("zeo")
    copy_instance_data(plone_template["directory"], directory)
    port = free_port()
    conf = directory / "zeo.conf"
    conf.write_text(f"""<zeo>
  address 127.0.0.1:{port}
</zeo>
<blobstorage 1>
  blob-dir {directory}/var/blobstorage
  <filestorage>
    path {directory}/var/Data.fs
  </filestorage>
</blobstorage>
""")
    runzeo = Path(sys.executable).parent / "runzeo"
    log = open(directory / "zeo.log", "wb")
    process = subprocess.Popen([str(runzeo), "-C", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: not port_is_free(port) or process.poll() is not None, 30, what="ZEO to listen")
    assert process.poll() is None, (directory / "zeo.log").read_text()
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(30)
    log.close()


def test_mkinstance_zeo_client_serves_plone(tmp_path, zeo_server, site_id, big_file):
    instance = tmp_path / "zeoclient"
    result = subprocess.run([TXZSERVER, "mkinstance", str(instance), "--user", "admin:x",
                             "--zeo", zeo_server, "--address", "127.0.0.1:0", "--threads", "2"],
                            capture_output=True, text=True, check=True)
    assert "created" in result.stdout
    conf = (instance / "etc" / "zope.conf").read_text()
    assert f"server {zeo_server}" in conf and "<zeoclient>" in conf
    server = ServerProcess(instance / "etc" / "zope.conf").start()
    try:
        front = httpx.get(server.url(f"/{site_id}"), timeout=30)
        assert front.status_code == 200
        digest = hashlib.sha256()
        with httpx.stream("GET", server.url(big_file["path"] + "/@@download/file"), timeout=120) as r:
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                digest.update(chunk)
        assert digest.hexdigest() == big_file["sha256"]
    finally:
        assert server.stop() == 0
