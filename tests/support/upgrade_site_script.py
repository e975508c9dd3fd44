"""Run by `txzserver run zope.conf upgrade_site_script.py SITE install|read OUTPUT.json` for
tests/integration/test_upgrade.py: install the test add-on's profile (tests/support/upgradestep)
in the site, or read what the upgrade left: the step's committed runs, the profile's version
and the upgrade lock's ZODB marker."""

import json
import sys

import transaction
from zope.component.hooks import setSite

from tests.support.upgradestep import COUNTER, PROFILE
from txzserver.zope.upgradelock import MARKER

site_id, mode, output = sys.argv[1:4]
app = globals()["app"]
site = app[site_id]
setSite(site)
setup = site.portal_setup
if mode == "install":
    setup.runAllImportStepsFromProfile(f"profile-{PROFILE}")
    transaction.commit()
marker = app._p_jar.root().get(MARKER)
version = setup.getLastVersionForProfile(PROFILE)  # a tuple, or "unknown"
with open(output, "w") as out:
    json.dump({"runs": getattr(site.aq_base, COUNTER, 0),
               "version": ".".join(version) if isinstance(version, tuple) else version,
               "marker": dict(marker) if marker is not None else None}, out)
