"""`txzserver mkinstance`: an instance folder with etc/zope.conf, etc/supervisord.conf (for
`txzserver ctl`), var/ and log/."""

import os
import secrets
import sys
from string import Template

from ..config.keys import commented_defaults

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config")
TEMPLATE = os.path.join(CONFIG_DIR, "zope.conf.in")
SUPERVISOR_TEMPLATE = os.path.join(CONFIG_DIR, "supervisord.conf.in")

FILESTORAGE = """<zodb_db main>
  mount-point /
  cache-size 30000
  <blobstorage>
    blob-dir $INSTANCE/var/blobstorage
    <filestorage>
      path $INSTANCE/var/Data.fs
    </filestorage>
  </blobstorage>
</zodb_db>"""

ZEOCLIENT = """<zodb_db main>
  mount-point /
  cache-size 30000
  <zeoclient>
    server {server}
    storage 1
    name zeostorage
    blob-dir $INSTANCE/var/blobcache
    shared-blob-dir off
    cache-size 128MB
  </zeoclient>
</zodb_db>"""


TASK_QUEUE = """<task-queue default>
  backend local
  concurrency 1
  retries 3
  retry-delay 1s
</task-queue>"""


class InstanceError(Exception):
    pass


def parse_user(value):
    """"admin:secret" -> ("admin", "secret"); "admin" -> ("admin", generated password)."""
    name, sep, password = value.partition(":")
    if not name:
        raise InstanceError("--user needs NAME[:PASSWORD]")
    if not sep:
        password = secrets.token_urlsafe(12)
    if not password:
        raise InstanceError("empty password in --user")
    return name, password


def render_config(instance, address="8080", threads=4, zeo=None):
    storage = ZEOCLIENT.format(server=zeo) if zeo else FILESTORAGE
    with open(TEMPLATE) as f:
        template = Template(f.read())
    queue = TASK_QUEUE if threads >= 2 else "# (none: server-threads 1 leaves no thread to share)"
    return template.substitute(instance=instance, address=address, threads=threads, storage=storage,
                               task_queue=queue, defaults=commented_defaults())


def render_supervisor_config(instance, txzserver=None):
    """supervisord.conf running ``txzserver serve`` on the instance's zope.conf."""
    txzserver = txzserver or os.path.join(os.path.dirname(sys.executable), "txzserver")
    with open(SUPERVISOR_TEMPLATE) as f:
        return Template(f.read()).substitute(instance=instance, txzserver=txzserver)


def make_instance(directory, user, address="8080", threads=4, zeo=None, force=False):
    """Create the instance folder; return (zope.conf path, admin name, admin password)."""
    from Zope2.utilities.mkwsgiinstance import write_inituser

    directory = os.path.abspath(directory)
    conf = os.path.join(directory, "etc", "zope.conf")
    if os.path.exists(conf) and not force:
        raise InstanceError(f"{conf} exists already (use --force to overwrite)")
    name, password = parse_user(user)
    for sub in ("etc", "var", "log"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    with open(conf, "w") as f:
        f.write(render_config(directory, address, threads, zeo))
    with open(os.path.join(directory, "etc", "supervisord.conf"), "w") as f:
        f.write(render_supervisor_config(directory))
    write_inituser(os.path.join(directory, "inituser"), name, password)
    return conf, name, password
