"""PasteDeploy server runner: `[server:main] use = egg:txzserver` in a zope.ini.

A drop-in for plone-backend style deployments that start Zope with `runwsgi zope.ini`: the
app (and its zope.conf, Zope's plain schema) comes from the ini file; only the server
changes. The options are ``listen`` (one or more host:port), ``h2c`` and every top-level
zope.conf key of txzserver with underscores (``max_connections = 500``, ``idle_timeout =
60s``): the configuration reference (docs/configuration-reference.md, "Paste options") lists
them, derived from the schema like ``ServerSettings.from_paste``. Unknown options are
rejected with a clear message.
"""

import logging

from .app import run
from .config.settings import ServerSettings
from .server.reactor import install_reactor
from .zope.startup import close_zope


def server_runner(wsgi_app, global_conf, **options):
    """Entry point ``paste.server_runner: main``."""
    settings = ServerSettings.from_paste(**options)
    logging.getLogger("txzserver").info("reactor: %s", install_reactor(settings.reactor))
    return run(lambda: wsgi_app, settings, on_stop=close_zope)
