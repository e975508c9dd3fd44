"""Real servers on loopback: one Plone template per session (copied, never built again), one
PostgreSQL per session, shared servers per configuration (``shared_servers``) and each module's
own servers (``servers``), stopped when the module ends."""

import os
import sys

import pytest

from tests.support.instance import (
    ADMIN, BIG_FILE_ID, ROOT, SITE_ID, build_template, copy_instance_data, http_server, https_server,
    new_instance,
)
from tests.support.cluster import relstorage_source, zeo_storage_source
from tests.support.nats import NatsServer
from tests.support.outage import Broker, Zeo
from tests.support.postgresql import PostgreSQL, build_site
from tests.support.server import ServerProcess, free_port, sigint_ignored_argv
from tests.support.tls import make_certificates


@pytest.fixture(scope="session")
def plone_template(tmp_path_factory):
    """A Plone site with a 100 MB File, built once (about 10 s) and copied per server."""
    return build_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def shared_postgresql():
    """One real PostgreSQL (Debian's) for the session's RelStorage clusters."""
    server = PostgreSQL(timeout=60)
    try:
        yield server.start()
    finally:
        server.stop()


RELSTORAGE_TEMPLATE = "plone_template"
RELSTORAGE_FILE_SIZE = 8 * 1024 * 1024 + 4321  # written in 9 pieces of RELSTORAGE_BLOB_CHUNK_SIZE


@pytest.fixture(scope="session")
def relstorage_template(tmp_path_factory, shared_postgresql):
    """The Plone site built in PostgreSQL once (its File made by the build script): each
    RelStorage cluster, and test_relstorage.py, gets a copy of this database."""
    dsn = shared_postgresql.create_database(RELSTORAGE_TEMPLATE)
    built = build_site(tmp_path_factory.mktemp("relstorage-template"), dsn, BIG_FILE_ID,
                       RELSTORAGE_FILE_SIZE, seed=b"cluster")
    return dict(relstorage_source(shared_postgresql, RELSTORAGE_TEMPLATE),
                files={BIG_FILE_ID: built["sha256"]}, file_size=RELSTORAGE_FILE_SIZE)


@pytest.fixture(scope="module", params=["zeo", "relstorage"])
def cluster_storage(request):
    """The storage of a module's two-instance cluster (tests.support.cluster.Cluster): ZEO, then
    RelStorage on PostgreSQL; every test of the module runs on both."""
    if request.param == "zeo":
        return zeo_storage_source(request.getfixturevalue("plone_template"))
    return request.getfixturevalue("relstorage_template")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


class Servers:
    """Start servers on copies of the template; ``stop_all`` stops every one started here."""

    def __init__(self, tmp_path_factory, template, tls):
        self.tmp = tmp_path_factory
        self.template = template
        self.tls = tls
        self.running = []

    def start(self, name, *, threads=1, extra="", https=False, h2c=True, with_site=True, env=None,
              sigint_ignored=False, http3=False):
        directory = self.tmp.mktemp(name)
        servers = http_server(0, h2c=h2c)
        if https:
            servers += "\n" + https_server(0, self.tls["cert"], self.tls["key"], http3=http3)
        conf = new_instance(directory, servers, f"server-threads {threads}\n{extra}")
        if with_site:
            copy_instance_data(self.template["directory"], directory)
        argv = sigint_ignored_argv(conf) if sigint_ignored else None
        server = ServerProcess(conf, argv=argv, env=env)
        self.running.append(server)  # stopped with the pool even when the start times out
        return server.start()

    def start_waitress(self, name, *, threads=1, seekable=False):
        """The same Zope app served by waitress (for contrast), on its own copy of the site."""
        directory = self.tmp.mktemp(name)
        conf = new_instance(directory, http_server(0))
        copy_instance_data(self.template["directory"], directory)
        argv = [sys.executable, "-m", "tests.support.waitress_server", str(conf), str(free_port()),
                str(threads)] + (["--seekable"] if seekable else [])
        server = ServerProcess(conf, argv=argv, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        self.running.append(server)
        return server.start()

    def stop_all(self):
        while self.running:
            self.running.pop().stop()


class SharedServers(Servers):
    """One server per distinct configuration for the whole session: modules that only read from
    a server with the same settings share it instead of each starting (and keeping) their own.
    A test that stops, reconfigures or attacks its server uses the module's ``servers``."""

    def __init__(self, tmp_path_factory, template, tls):
        super().__init__(tmp_path_factory, template, tls)
        self.by_config = {}

    def get(self, *, threads=1, extra="", https=False, h2c=True):
        key = (threads, extra, https, h2c)
        if key not in self.by_config:
            self.by_config[key] = self.start(f"shared{len(self.by_config)}", threads=threads,
                                             extra=extra, https=https, h2c=h2c)
        return self.by_config[key]


@pytest.fixture(scope="session")
def shared_servers(tmp_path_factory, plone_template, tls_files):
    pool = SharedServers(tmp_path_factory, plone_template, tls_files)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, plone_template, tls_files):
    """The module's own servers, stopped when the module ends (a Zope process holds ~300 MB)."""
    pool = Servers(tmp_path_factory, plone_template, tls_files)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def plone_server(shared_servers):
    """The main server: one publisher thread, HTTP/1.1 + h2c and TLS with ALPN, shared by every
    module (no test stops or reconfigures it)."""
    return shared_servers.get(threads=1, https=True)


@pytest.fixture(scope="session")
def admin_auth():
    return ADMIN


@pytest.fixture(scope="session")
def site_id():
    return SITE_ID


@pytest.fixture(scope="session")
def big_file(plone_template):
    return {"path": f"/{SITE_ID}/{BIG_FILE_ID}", "sha256": plone_template["big_sha256"],
            "size": plone_template["big_size"]}


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    """A real nats-server with JetStream for the module (stopped cleanly after it)."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def nats(tmp_path):
    """A real nats-server with JetStream of the test's own (killed after it: nothing to keep)."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A real `txzserver broker` of the module's own (its tests may stop and start it)."""
    server = Broker(tmp_path_factory.mktemp("bus"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def zeo(tmp_path_factory, plone_template):
    """A real ZEO server on a copy of the Plone template, the module's own (its tests may stop
    and start it)."""
    server = Zeo(tmp_path_factory.mktemp("zeo"), plone_template["directory"])
    server.start()
    yield server
    server.stop()
