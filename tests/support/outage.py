"""Dependencies a test stops and starts again on the same address: a ZEO server on a copy of
the Plone template, and `txzserver broker` on ipc:// sockets (tests/integration/test_health.py,
test_degraded.py)."""

import subprocess
import sys
from pathlib import Path

from .instance import TXZSERVER, copy_instance_data
from .server import free_port, port_is_free, wait_for


class Zeo:
    """runzeo on a copy of the template site, stopped and started again on the same port."""

    def __init__(self, directory, template):
        self.directory = Path(directory)
        copy_instance_data(template, self.directory)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.conf = self.directory / "zeo.conf"
        self.conf.write_text(
            f"<zeo>\n  address {self.address}\n</zeo>\n<blobstorage 1>\n"
            f"  blob-dir {self.directory}/var/blobstorage\n  <filestorage>\n"
            f"    path {self.directory}/var/Data.fs\n  </filestorage>\n</blobstorage>\n")
        self.process = None

    def start(self):
        log = open(self.directory / "zeo.log", "ab")
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "runzeo"), "-C",
                                         str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(lambda: not port_is_free(self.port) or self.process.poll() is not None, 30,
                 what="ZEO to listen")
        assert self.process.poll() is None, (self.directory / "zeo.log").read_text()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


class Broker:
    """`txzserver broker` on ipc:// sockets, stopped and started again on the same endpoints."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.publish = f"ipc://{self.directory}/publish.sock"
        self.subscribe = f"ipc://{self.directory}/subscribe.sock"
        self.process = None

    def start(self):
        log = open(self.directory / "broker.log", "ab")
        self.process = subprocess.Popen([TXZSERVER, "broker", "--frontend", self.publish, "--backend",
                                         self.subscribe, "--no-tasks"], stdout=log,
                                        stderr=subprocess.STDOUT)
        log.close()
        wait_for(lambda: (self.directory / "subscribe.sock").exists() or self.process.poll() is not None,
                 30, what="the broker's sockets")
        assert self.process.poll() is None, (self.directory / "broker.log").read_text()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
