"""PasteDeploy server runner: `[server:main] use = egg:txzserver` in a zope.ini.

A drop-in for plone-backend style deployments that start Zope with `runwsgi zope.ini`: the
app (and its zope.conf, Zope's plain schema) comes from the ini file; only the server
changes. Options, each with its zope.conf twin (``ServerSettings.from_paste``):

    listen = 127.0.0.1:8080 [::1]:8080     (one or more <http-server> addresses)
    h2c = on                               threads = 4            reactor = auto
    max_request_body_size = 1073741824     max_header_size = 65536
    idle_timeout = 60                      header_timeout = 10
    max_connections = 1000
    shutdown_timeout = 30                  trusted_proxy = 127.0.0.1 10.0.0.1
    max_publishing_per_connection = 0      http2_max_concurrent_streams = 100
    http2_max_reset_burst = 100            http2_reset_rate = 10
    http2_max_control_frames = 100         http2_control_frame_rate = 10
    log_format = text                      (json: access records carry their fields for
                                           the ini's txzserver.jsonlog.JsonFormatter)

Unknown options are rejected with a clear message.
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
