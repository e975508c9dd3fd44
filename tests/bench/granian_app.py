"""The Zope app as granian's WSGI target: ``granian --interface wsgi tests.bench.granian_app:app``.

Imported in granian's worker process. Zope is configured from the zope.conf named by
TXZSERVER_BENCH_CONF (server sections ignored), and the app is the object txzserver
publishes, so only the server differs. The ready lines go to the instance's event log, where
tests.support.server.ServerProcess looks for them (TXZSERVER_BENCH_PORT: the port granian
was started on).
"""

import logging
import os

from txzserver.config import load
from txzserver.zope.startup import configure_logging, start_zope

_opts, _settings = load(os.environ["TXZSERVER_BENCH_CONF"])
configure_logging(_opts.configroot)
app = start_zope(_opts, _settings)

_log = logging.getLogger("txzserver")
_log.info("txzserver granian listening on http://127.0.0.1:%s", os.environ["TXZSERVER_BENCH_PORT"])
_log.info("txzserver ready: granian's worker imported the Zope app")
