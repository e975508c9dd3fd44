"""`txzserver mkinstance`: an instance folder with etc/zope.conf, var/ and log/."""

import os
import secrets
from string import Template

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "zope.conf.in")

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
    return template.substitute(instance=instance, address=address, threads=threads, storage=storage)


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
    write_inituser(os.path.join(directory, "inituser"), name, password)
    return conf, name, password
