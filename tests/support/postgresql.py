"""A throwaway PostgreSQL server for tests: Debian's initdb and pg_ctl in a temporary directory.

PostgreSQL refuses to run as root: as root the cluster belongs to, and the server runs as, the
user ``postgres`` (made by Debian's package) through ``runuser``. It listens on a free loopback
port with scram-sha-256 password authentication, as the txzserver/postgresql image does.
"""

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from .server import free_port

USER = "zope"
DATABASE = "zope"


def bin_dir():
    """The newest /usr/lib/postgresql/N/bin with pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda path: int(Path(path).parent.parent.name))
    return Path(found[-1]).parent if found else None


class PostgreSQL:
    """``start()`` makes the cluster and the database and starts the server; ``stop()`` removes all."""

    def __init__(self, timeout=60):
        self.bin = bin_dir()
        self.timeout = timeout
        self.password = secrets.token_hex(12)
        self.port = None
        self.directory = None
        self.runas = None

    @property
    def dsn(self):
        return self.dsn_for(DATABASE)

    def dsn_for(self, database):
        return (f"host=127.0.0.1 port={self.port} dbname={database} user={USER} "
                f"password={self.password}")

    def create_database(self, name, template=None):
        """A new database owned by the test user; a copy of ``template`` (a file-level copy,
        large objects included: about a second for a Plone site) when given."""
        copy = f" TEMPLATE {template}" if template else ""
        self.sql(f"CREATE DATABASE {name} OWNER {USER}{copy}", database="postgres")
        return self.dsn_for(name)

    def _run(self, *argv, **kwargs):
        if self.runas:
            argv = ("runuser", "-u", self.runas, "--", *argv)
        return subprocess.run(argv, check=True, capture_output=True, text=True, cwd=self.directory,
                              timeout=self.timeout, **kwargs)

    def start(self):
        if self.bin is None:
            raise RuntimeError("no PostgreSQL (apt-get install postgresql; `make test` does)")
        # not below pytest's tmp_path: as root that is a 0700 directory the server user cannot enter
        self.directory = Path(tempfile.mkdtemp(prefix="txz-postgresql-"))
        data, socket_dir = self.directory / "data", self.directory / "run"
        socket_dir.mkdir()
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        if os.getuid() == 0:
            self.runas = "postgres"
            user = pwd.getpwnam(self.runas)
            for path in (self.directory, socket_dir, password_file):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.port = free_port()
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={password_file}",
                  "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8")
        password_file.unlink()
        self._options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                         f"-c unix_socket_directories={socket_dir} -c fsync=off")
        self.resume()
        self.create_database(DATABASE)
        return self

    def resume(self):
        """Start the server (again, after ``halt``) on the same port and data."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-l",
                  str(self.directory / "server.log"), "-o", self._options, "-w", "-t",
                  str(self.timeout), "start")

    def halt(self):
        """Stop the server as an outage would (clients cut off), keeping its data for ``resume``."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w",
                  "-t", str(self.timeout), "stop")

    def connect(self, database=DATABASE):
        import psycopg2
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, dbname=database, user=USER,
                                      password=self.password, connect_timeout=10)
        connection.autocommit = True
        return connection

    def sql(self, statement, database=DATABASE):
        """Run one statement; the first column of the first row, if any."""
        # not `with connection`: psycopg2 opens a transaction there even in autocommit mode
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                row = cursor.fetchone() if cursor.description else None
        finally:
            connection.close()
        return row[0] if row else None

    def log_text(self):
        path = self.directory / "server.log" if self.directory else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self):
        if self.directory is None:
            return
        try:
            if (self.directory / "data" / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast",
                          "-w", "-t", str(self.timeout), "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


ENTRYPOINT = Path(__file__).resolve().parents[2] / "images" / "plone" / "docker-entrypoint.sh"
STORAGE_CONF = ENTRYPOINT.parents[2] / "config" / "storage-relstorage.conf"
DEFAULT = re.compile(r"^export (RELSTORAGE_\w+|ZODB_CACHE_SIZE)=\$\{\1:-(.*)\}$", re.MULTILINE)


def image_environment(dsn, blob_dir, **overrides):
    """The variables the plone image gives config/storage-relstorage.conf: its entrypoint's
    defaults (read from the script, not copied), RELSTORAGE_DSN, RELSTORAGE_BLOB_DIR, overrides."""
    env = dict(DEFAULT.findall(ENTRYPOINT.read_text()))
    env.update(RELSTORAGE_DSN=dsn, RELSTORAGE_BLOB_DIR=str(blob_dir), **overrides)
    return env


def relstorage_environment(dsn, directory, **overrides):
    """The environment of a txzserver process (serve or run) of the instance ``directory`` on
    STORAGE_CONF: ours, the image's variables (its blob cache in ``directory``/blobcache) and a
    TMPDIR of the instance's own."""
    directory = Path(directory)
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    return dict(os.environ, **image_environment(dsn, directory / "blobcache", **overrides),
                TMPDIR=str(directory / "tmp"))


def build_site(directory, dsn, file_id, file_size, seed=b"relstorage", servers=""):
    """An instance folder in ``directory`` whose zope.conf includes STORAGE_CONF on ``dsn``, and
    the test Plone site (tests/support/build_site.py, with a File ``file_id`` of ``file_size``
    pseudo-random bytes) built in that database. Returns conf, directory, env and the File's
    sha256."""
    from .instance import BUILD_SCRIPT, SITE_ID, TXZSERVER, new_instance, write_inituser, \
        write_random_file
    directory = Path(directory)
    conf = new_instance(directory, servers, "server-threads 2", storage=f"%include {STORAGE_CONF}")
    write_inituser(directory)
    env = relstorage_environment(dsn, directory)
    source = directory / "file-source.bin"
    digest = write_random_file(source, file_size, seed=seed)
    subprocess.run([TXZSERVER, "run", str(conf), str(BUILD_SCRIPT), SITE_ID, str(source), file_id],
                   check=True, cwd=directory, env=env, timeout=300)
    source.unlink()
    return {"conf": conf, "directory": directory, "env": env, "sha256": digest}
