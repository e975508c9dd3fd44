"""Count what Zope really publishes: an IPubStart subscriber for a server under test.

The access log cannot tell whether a reset request was published: a response whose client
is gone is never finished, so it never gets an access line. Zope notifies ``IPubStart`` when
``publish()`` begins; ``SITE_ZCML`` (an instance's etc/site.zcml, loaded instead of Zope's
skeleton one) subscribes ``log_start``, which writes one event-log line per publish. The
server process needs the checkout on its PYTHONPATH to import this module.
"""

import logging
import re

SITE_ZCML = """<configure xmlns="http://namespaces.zope.org/zope">
  <include package="Zope2.utilities" file="skel/etc/site.zcml" />
  <subscriber for="ZPublisher.interfaces.IPubStart" handler="tests.support.published.log_start" />
</configure>
"""

PREFIX = "zope publishes"
LINE = re.compile(rf"{PREFIX} (\S+) (\S*)")

log = logging.getLogger("tests.published")


def log_start(event):
    """Worker thread, as Zope's publish() starts: one line with method, path and query."""
    request = event.request
    query = request.environ.get("QUERY_STRING", "")
    log.info("%s %s %s%s", PREFIX, request.environ.get("REQUEST_METHOD"),
             request.environ.get("PATH_INFO"), f"?{query}" if query else "")


def published(event_log_text, marker):
    """How many publishes the event log shows for URLs containing ``marker``."""
    return sum(1 for _, url in LINE.findall(event_log_text) if marker in url)
