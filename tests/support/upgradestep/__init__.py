"""A test add-on with a pending upgrade step (tests/integration/test_upgrade.py): v1.zcml
registers its profile at version 1000, v2.zcml (the "new image") at 1001 with the step
1000 -> 1001, ``count_run``. An instance's etc/site.zcml includes one of them (``site_zcml``)."""

import os
import time
from pathlib import Path

PROFILE = "tests.support.upgradestep:default"
#: the site's attribute that counts the step's committed runs
COUNTER = "_txzserver_test_upgrade_runs"
#: a directory: the step says it started there (a file per process) and waits for its file "open"
GATE = "UPGRADE_TEST_GATE"


def site_zcml(version):
    """An instance's etc/site.zcml: Zope and Plone as the test instances load them, and this
    add-on's ``version`` instead of the task views."""
    from tests.support.instance import SITE_ZCML
    views = '<include package="tests.support" file="taskviews.zcml" />'
    assert views in SITE_ZCML
    return SITE_ZCML.replace(views, f'<include package="tests.support.upgradestep" file="{version}.zcml" />')


def count_run(setup_tool):
    """The upgrade step: one more run counted in the site; held at the gate when there is one,
    so that a test can start a second upgrade while this one is inside its step."""
    from Acquisition import aq_base, aq_inner, aq_parent
    site = aq_parent(aq_inner(setup_tool))
    setattr(site, COUNTER, getattr(aq_base(site), COUNTER, 0) + 1)
    gate = os.environ.get(GATE)
    if gate:
        Path(gate, f"started-{os.getpid()}").touch()
        deadline = time.monotonic() + 300
        while not Path(gate, "open").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test never opened {gate}/open")
            time.sleep(0.05)
