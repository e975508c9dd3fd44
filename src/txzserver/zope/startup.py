"""The one place that configures logging and starts Zope from a parsed zope.conf.

Zope's publisher setters (webdav source port, trusted proxies, debug mode) are called by
Zope's own WSGIStarter.prepare(); we only feed it our listeners' facts first.
"""

import logging

import Zope2
from App.config import setConfiguration
from Zope2.Startup import get_wsgi_starter
from Zope2.Startup.handlers import handleWSGIConfig
from zope.component import provideUtility

from ..bus.interfaces import IEventPublisher
from ..jsonlog import use_json
from . import compilelock, davpatches, firststart, ranges, zeopatches
from .publish import make_app

log = logging.getLogger("txzserver")


def configure_logging(root):
    """Install the handlers of ``<eventlog>`` and ``<logger ...>`` sections (ZServer-style).

    Without a ``<logger access>`` section access lines go nowhere rather than into the
    event log. With ``log-format json`` every handler of those sections writes JSON lines
    (``txzserver.jsonlog``) instead of its ``format``.
    """
    if root.eventlog is not None:
        root.eventlog()
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    configured = set()
    loggers = [logging.getLogger()]
    for factory in root.loggers or ():
        logger = factory()
        configured.add(logger.name)
        loggers.append(logger)
    if getattr(root, "log_format", "text") == "json":
        use_json(loggers)
    if "access" not in configured:
        access = logging.getLogger("access")
        access.propagate = False
        access.addHandler(logging.NullHandler())


def start_zope(opts, settings):
    """Configure and start Zope; return the WSGI application to publish with."""

    root = opts.configroot
    compilelock.apply()  # before any publisher thread compiles a template
    if settings.webdav_source_port:
        root.webdav_source_port = settings.webdav_source_port
    handleWSGIConfig(root, opts.confighandlers)
    setConfiguration(root)
    starter = get_wsgi_starter()
    starter.setConfiguration(root)
    with firststart.retrying():  # processes starting together on an empty database
        starter.prepare()
    davpatches.apply()
    zeopatches.apply()
    ranges.apply()
    return make_app()


def register_event_publisher(publisher):
    """Make ``publisher`` the IEventPublisher the Zope add-on sends committed events to."""
    provideUtility(publisher, IEventPublisher)


def close_zope():
    """Close the ZODB databases (reactor 'after shutdown')."""
    db = getattr(Zope2, "DB", None)
    if db is not None:
        db.close()
        log.info("ZODB closed")
