"""A server under test whose Zope logs each publish (``tests.support.published``).

Used to count what reached Zope: Rapid Reset (``test_rapid_reset.py``), hostile HTTP/1.1
(``test_http1_hostile.py``).
"""

import os

from tests.support.instance import ROOT, copy_instance_data, http_server, https_server, new_instance
from tests.support.published import SITE_ZCML
from tests.support.server import ServerProcess


def start_counting_server(servers, name, *, threads=1, extra="", https=True):
    """HTTP (h2c), with ``https`` also TLS, on a copy of the Plone site, Zope's publishes
    counted (SITE_ZCML); stopped with ``servers`` (the integration ``servers`` fixture)."""
    directory = servers.tmp.mktemp(name)
    listeners = http_server(0, h2c=True)
    if https:
        listeners += "\n" + https_server(0, servers.tls["cert"], servers.tls["key"])
    conf = new_instance(directory, listeners, f"server-threads {threads}\n{extra}")
    copy_instance_data(servers.template["directory"], directory)
    (directory / "etc" / "site.zcml").write_text(SITE_ZCML)
    process = ServerProcess(conf, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    servers.running.append(process)
    return process.start()
