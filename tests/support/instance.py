"""Instance folders for tests: a zope.conf written from parts, a Plone template reused by copy.

The Plone site (and a 100 MB File in it) is built once per test session into a template
instance; every server under test gets its own copy of var/ (Data.fs copied, committed
blobs hard-linked: ZODB never rewrites a committed blob file).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from txzserver.zope.instance import FILESTORAGE

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TXZSERVER = str(BIN / "txzserver")
ADMIN = ("admin", "admin-secret-for-tests")
SITE_ID = "Plone"
BIG_FILE_ID = "big.bin"
BIG_FILE_SIZE = 100 * 1024 * 1024

STORAGE = FILESTORAGE  # the FileStorage with blobs that mkinstance writes


def zope_conf(instance, servers, extra="", storage=STORAGE):
    """zope.conf text for ``instance`` with the given server sections and extra keys."""
    return f"""%define INSTANCE {instance}
instancehome $INSTANCE
clienthome $INSTANCE/var
{servers}
{extra}
<eventlog>
  level INFO
  <logfile>
    path $INSTANCE/log/event.log
    format %(asctime)s %(levelname)s [%(name)s] %(message)s
  </logfile>
</eventlog>
<logger access>
  level INFO
  <logfile>
    path $INSTANCE/log/access.log
    format %(message)s
  </logfile>
</logger>
{storage}
"""


def http_server(port, h2c=True, host="127.0.0.1"):
    return f"<http-server>\n  address {host}:{port}\n  h2c {'on' if h2c else 'off'}\n</http-server>"


def https_server(port, cert, key, host="127.0.0.1", http2=True, http3=False):
    return (f"<https-server>\n  address {host}:{port}\n  certificate {cert}\n"
            f"  private-key {key}\n  http2 {'on' if http2 else 'off'}\n"
            f"  http3 {'on' if http3 else 'off'}\n</https-server>")


def new_instance(directory, servers="", extra="", storage=STORAGE):
    """Make instance folders and zope.conf; return the zope.conf path."""
    directory = Path(directory)
    for sub in ("etc", "var", "log"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    if not servers:
        servers = http_server(0)
    conf = directory / "etc" / "zope.conf"
    conf.write_text(zope_conf(directory, servers, extra, storage))
    return conf


def write_inituser(directory):
    from Zope2.utilities.mkwsgiinstance import write_inituser as write
    write(str(Path(directory) / "inituser"), *ADMIN)


BUILD_SCRIPT = ROOT / "tests" / "support" / "build_site.py"


def build_template(directory, size=BIG_FILE_SIZE):
    """Build the Plone template instance (site + a File of ``size`` bytes); return facts about it."""
    directory = Path(directory)
    conf = new_instance(directory)
    write_inituser(directory)
    big = directory / "big-source.bin"
    digest = write_random_file(big, size)
    subprocess.run([TXZSERVER, "run", str(conf), str(BUILD_SCRIPT), SITE_ID, str(big), BIG_FILE_ID],
                   check=True, cwd=directory, timeout=600)
    return {"directory": directory, "big_sha256": digest, "big_size": size}


def write_random_file(path, size, seed=b"txzserver"):
    """Write ``size`` pseudo-random bytes (fast, reproducible); return their sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha512(seed).digest() * 16384  # 1 MiB
    counter = 0
    with open(path, "wb") as f:
        written = 0
        while written < size:
            counter += 1
            chunk = bytes(b ^ (counter & 0xFF) for b in block[:64]) + block[64:]
            chunk = chunk[: size - written]
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def copy_instance_data(template, directory):
    """Give ``directory`` its own copy of the template's var/ (blobs hard-linked)."""
    template, directory = Path(template), Path(directory)
    (directory / "var").mkdir(parents=True, exist_ok=True)
    shutil.copy2(template / "var" / "Data.fs", directory / "var" / "Data.fs")
    shutil.copytree(template / "var" / "blobstorage", directory / "var" / "blobstorage",
                    copy_function=os.link, dirs_exist_ok=True)


SITE_ZCML = """<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:five="http://namespaces.zope.org/five">
  <include package="Zope2.App" />
  <five:loadProducts file="meta.zcml"/>
  <five:loadProducts />
  <five:loadProductsOverrides />
  <include package="tests.support" file="taskviews.zcml" />
</configure>
"""


def with_task_views(conf):
    """Load tests/support/taskviews.zcml in the instance of ``conf``; the env its server needs."""
    (Path(conf).parent / "site.zcml").write_text(SITE_ZCML)
    return dict(os.environ, PYTHONPATH=str(ROOT))


def run_site_script(directory, template, script, *args):
    """Run ``script`` in Zope (``txzserver run``) on a copy of the Plone ``template`` in
    ``directory``, its last argument the JSON file it writes; return (zope.conf, that JSON).

    The add-on's subscribers log instead of raising, so a "txzserver: " line in the event log
    is a failure too.
    """
    directory = Path(directory)
    conf = new_instance(directory)
    copy_instance_data(template["directory"], directory)
    output = directory / "output.json"
    run = subprocess.run([TXZSERVER, "run", str(conf), str(script), *map(str, args), str(output)],
                         cwd=directory, capture_output=True, text=True, timeout=300)
    log = (directory / "log" / "event.log").read_text(errors="replace")
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{log}"
    assert "txzserver: " not in log, log
    return conf, json.loads(output.read_text())
