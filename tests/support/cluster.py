"""Several instances on one shared storage, with a real event-bus broker between them.

The storage is a real ZEO server or RelStorage on a real PostgreSQL (Debian's, one per test
session): ``Cluster(directory, storage)`` with ``storage`` one of ``zeo_storage_source`` and
``relstorage_source`` (the ``cluster_storage`` fixture of tests/integration/conftest.py gives
both in turn). Either way the cluster starts on its own copy of a Plone site built once.
``running_cluster`` gives one started, and stops it afterwards (a module's fixture).
"""

import contextlib
import secrets
import subprocess
import sys
from pathlib import Path

from .instance import copy_instance_data, http_server, new_instance
from .postgresql import STORAGE_CONF, relstorage_environment
from .server import ServerProcess, free_port, port_is_free, wait_for

BIN = Path(sys.executable).parent


def zeo_storage(address):
    return f"""<zodb_db main>
  mount-point /
  cache-size 5000
  <zeoclient>
    server {address}
    storage 1
    name zeostorage
    blob-dir $INSTANCE/var/blobcache
    shared-blob-dir off
  </zeoclient>
</zodb_db>"""


def zeo_storage_source(template):
    """``template``: the session's Plone template instance (FileStorage), copied for ZEO."""
    return {"kind": "zeo", "template": template}


def relstorage_source(postgresql, database):
    """``database``: a database of ``postgresql`` holding the site, copied per cluster."""
    return {"kind": "relstorage", "postgresql": postgresql, "template_database": database}


class Cluster:
    """The storage holding a copy of the template site, a broker, and txzserver instances."""

    def __init__(self, directory, storage):
        self.directory = Path(directory)
        # a template instance alone (as tests/bench/tasks.py gives it): ZEO
        self.storage = storage if "kind" in storage else zeo_storage_source(storage)
        self.kind = self.storage["kind"]
        self.processes = []
        self.instances = {}
        self.zeo_address = None
        self.database = self.dsn = None
        self.bus = None

    def start_storage(self):
        """ZEO on a copy of the template's Data.fs and blobs, or a new PostgreSQL database made
        from the template database (CREATE DATABASE ... TEMPLATE)."""
        if self.kind == "zeo":
            return self.start_zeo()
        self.database = f"cluster_{secrets.token_hex(4)}"
        self.dsn = self.storage["postgresql"].create_database(
            self.database, template=self.storage["template_database"])
        return self.dsn

    def start_zeo(self):
        zeo = self.directory / "zeo"
        copy_instance_data(self.storage["template"]["directory"], zeo)
        port = free_port()
        conf = zeo / "zeo.conf"
        conf.write_text(f"<zeo>\n  address 127.0.0.1:{port}\n</zeo>\n<blobstorage 1>\n"
                        f"  blob-dir {zeo}/var/blobstorage\n  <filestorage>\n"
                        f"    path {zeo}/var/Data.fs\n  </filestorage>\n</blobstorage>\n")
        process = self._spawn([str(BIN / "runzeo"), "-C", str(conf)], zeo / "zeo.log")
        wait_for(lambda: not port_is_free(port) or process.poll() is not None, 30, what="ZEO")
        assert process.poll() is None, (zeo / "zeo.log").read_text()
        self.zeo_address = f"127.0.0.1:{port}"
        return self.zeo_address

    def sql(self, statement):
        """RelStorage: one statement on the cluster's database (PostgreSQL.sql)."""
        return self.storage["postgresql"].sql(statement, database=self.database)

    def start_broker(self):
        bus = self.directory / "bus"
        bus.mkdir(mode=0o700, exist_ok=True)  # the broker refuses a bus directory open to others
        self.bus = {"publish": f"ipc://{bus}/publish.sock", "subscribe": f"ipc://{bus}/subscribe.sock",
                    "tasks_push": f"ipc://{bus}/tasks-in.sock", "tasks_pull": f"ipc://{bus}/tasks-out.sock"}
        process = self._spawn([str(BIN / "txzserver"), "broker", "--frontend", self.bus["publish"],
                               "--backend", self.bus["subscribe"], "--tasks-frontend",
                               self.bus["tasks_push"], "--tasks-backend", self.bus["tasks_pull"]],
                              bus / "broker.log")
        wait_for(lambda: (bus / "subscribe.sock").exists() or process.poll() is not None, 30,
                 what="broker sockets")
        assert process.poll() is None, (bus / "broker.log").read_text()
        self.broker = process
        return process

    def restart_broker(self):
        """Stop the broker and start a new one on the same endpoints."""
        self.broker.terminate()
        assert self.broker.wait(10) == 0, "broker did not stop cleanly on SIGTERM"
        return self.start_broker()

    def start_instance(self, name, threads=2, extra="", prepare=None, bus_extra=""):
        """``prepare(conf)`` (optional) runs before the start and returns the server's env;
        ``bus_extra``: more keys of the <event-bus> section."""
        websocket = "<websocket>\n  path /ws\n  site Plone\n  ping-interval 5s\n</websocket>"
        bus = (f"<event-bus>\n  publish {self.bus['publish']}\n  subscribe {self.bus['subscribe']}\n"
               f"{bus_extra}</event-bus>") if self.bus else ""
        directory = self.directory / name
        storage = (zeo_storage(self.zeo_address) if self.kind == "zeo"
                   else f"%include {STORAGE_CONF}")
        conf = new_instance(directory, http_server(0),
                            f"server-threads {threads}\ninstance-name {name}\n{websocket}\n{bus}\n{extra}",
                            storage=storage)
        env = prepare(conf) if prepare else None
        if self.kind == "relstorage":  # the image's RELSTORAGE_* variables, a blob cache each
            env = dict(relstorage_environment(self.dsn, directory / "var"), **(env or {}))
        server = ServerProcess(conf, env=env).start()
        self.instances[name] = server
        return server

    def _spawn(self, argv, log_path):
        log = open(log_path, "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((process, log))
        return process

    def stop(self):
        for server in self.instances.values():
            server.stop()
        for process, log in reversed(self.processes):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


@contextlib.contextmanager
def running_cluster(directory, storage, names=(), broker=False, options=None, **same):
    """A Cluster with its storage started (with ``broker``, a broker too) and the instances
    ``names``, each started with the keywords ``same`` and those ``options(cluster, name)``
    returns; stopped afterwards, whatever happened."""
    cluster = Cluster(directory, storage)
    try:
        cluster.start_storage()
        if broker:
            cluster.start_broker()
        for name in names:
            cluster.start_instance(name, **same, **(options(cluster, name) if options else {}))
        yield cluster
    finally:
        cluster.stop()
