"""Real servers on loopback: one Plone template per session, a server process per config."""

import pytest

from tests.support.instance import (
    ADMIN, SITE_ID, BIG_FILE_ID, build_template, copy_instance_data, http_server, https_server,
    new_instance,
)
from tests.support.cluster import relstorage_source, zeo_storage_source
from tests.support.postgresql import PostgreSQL, build_site
from tests.support.server import ServerProcess
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


@pytest.fixture(scope="session")
def relstorage_template(tmp_path_factory, shared_postgresql):
    """The Plone site built in PostgreSQL, as test_relstorage.py does (a small File instead of the
    100 MB one): each RelStorage cluster gets a copy of this database."""
    dsn = shared_postgresql.create_database(RELSTORAGE_TEMPLATE)
    build_site(tmp_path_factory.mktemp("relstorage-template"), dsn, BIG_FILE_ID, 64 * 1024,
               seed=b"cluster")
    return relstorage_source(shared_postgresql, RELSTORAGE_TEMPLATE)


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
    """Start servers on copies of the template; all are stopped at the end of the scope."""

    def __init__(self, tmp_path_factory, template, tls):
        self.tmp = tmp_path_factory
        self.template = template
        self.tls = tls
        self.running = []

    def start(self, name, *, threads=1, extra="", https=False, h2c=True, with_site=True, env=None):
        directory = self.tmp.mktemp(name)
        servers = http_server(0, h2c=h2c)
        if https:
            servers += "\n" + https_server(0, self.tls["cert"], self.tls["key"])
        conf = new_instance(directory, servers, f"server-threads {threads}\n{extra}")
        if with_site:
            copy_instance_data(self.template["directory"], directory)
        server = ServerProcess(conf, env=env).start()
        self.running.append(server)
        return server

    def start_waitress(self, name, *, threads=1, seekable=False):
        """The same Zope app served by waitress (for contrast), on its own copy of the site."""
        import os
        import sys
        from tests.support.instance import ROOT
        from tests.support.server import free_port
        directory = self.tmp.mktemp(name)
        conf = new_instance(directory, http_server(0))
        copy_instance_data(self.template["directory"], directory)
        argv = [sys.executable, "-m", "tests.support.waitress_server", str(conf), str(free_port()),
                str(threads)] + (["--seekable"] if seekable else [])
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        server = ServerProcess(conf, argv=argv, env=env).start()
        self.running.append(server)
        return server

    def stop_all(self):
        for server in self.running:
            server.stop()


@pytest.fixture(scope="session")
def servers(tmp_path_factory, plone_template, tls_files):
    pool = Servers(tmp_path_factory, plone_template, tls_files)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def plone_server(servers):
    """The main server: one publisher thread, HTTP/1.1 + h2c and TLS with ALPN."""
    return servers.start("main", threads=1, https=True)


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
