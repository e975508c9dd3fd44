"""PasteDeploy server runner: `[server:main] use = egg:txzserver` in a zope.ini.

A drop-in for plone-backend style deployments that start Zope with `runwsgi zope.ini`: the
app (and its zope.conf, Zope's plain schema) comes from the ini file; only the server
changes. Options, each with its zope.conf twin:

    listen = 127.0.0.1:8080 [::1]:8080     (one or more <http-server> addresses)
    h2c = on                               threads = 4            reactor = auto
    max_request_body_size = 1073741824     max_header_size = 65536
    idle_timeout = 60                      max_connections = 1000
    shutdown_timeout = 30                  trusted_proxy = 127.0.0.1 10.0.0.1

Unknown options are rejected with a clear message.
"""

from .config.datatypes import Listener, reactor_name
from .config.settings import ServerSettings


def _bool(value):
    value = str(value).strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _address(value):
    host, _, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not port.isdigit():
        raise ValueError(f"listen address needs host:port, not {value!r}")
    return host, int(port)


OPTIONS = {
    "threads": ("threads", int),
    "reactor": ("reactor", reactor_name),
    "max_request_body_size": ("max_request_body_size", int),
    "max_header_size": ("max_header_size", int),
    "idle_timeout": ("idle_timeout", float),
    "max_connections": ("max_connections", int),
    "shutdown_timeout": ("shutdown_timeout", float),
    "trusted_proxy": ("trusted_proxies", lambda v: tuple(v.split())),
}


def settings_from_options(listen="127.0.0.1:8080", h2c="on", **options):
    """ServerSettings from paste options (strings); ValueError for unknown or bad ones."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown txzserver option(s): {', '.join(unknown)};"
                         f" known: listen, h2c, {', '.join(sorted(OPTIONS))}")
    h2c_on = _bool(h2c)
    listeners = tuple(Listener("http", *_address(a), h2c=h2c_on) for a in listen.split())
    values = {OPTIONS[k][0]: OPTIONS[k][1](v) for k, v in options.items()}
    return ServerSettings(listeners=listeners, **values)


def server_runner(wsgi_app, global_conf, **options):
    """Entry point ``paste.server_runner: main``."""
    import logging

    from .server.reactor import install_reactor
    from .server.runner import run
    from .startup import close_zope

    settings = settings_from_options(**options)
    logging.getLogger("txzserver").info("reactor: %s", install_reactor(settings.reactor))
    return run(lambda: wsgi_app, settings, on_stop=close_zope)
