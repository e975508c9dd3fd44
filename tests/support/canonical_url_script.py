"""Run by `txzserver run zope.conf canonical_url_script.py SITE CANONICAL OUTPUT.json`: the
urls of events made under a request whose Host is forged (evil.example), before and after the
site's canonical URL (registry txzserver.canonical_url) is set. Writes {label: [urls]}.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: see sitescript

from tests.support.sitescript import Recorder, Steps, open_site  # noqa: E402

site_id, canonical, output = sys.argv[1:4]
# what a request through a front that copies the client's Host looks like to Zope
site = open_site(globals()["app"], site_id,
                 environ={"SERVER_NAME": "evil.example", "SERVER_PORT": "443",
                          "HTTP_HOST": "evil.example", "HTTPS": "on"})

from plone import api  # noqa: E402

step = Steps(Recorder(lambda e: e.url))
results = step.results


site.portal_setup.runAllImportStepsFromProfile("profile-txzserver:default")
results["record_before"] = api.portal.get_registry_record("txzserver.canonical_url")
api.content.create(container=site, type="Document", id="canon-a", title="A")
step("unset")
api.portal.set_registry_record("txzserver.canonical_url", canonical)
step("setting")
folder = api.content.create(container=site, type="Folder", id="canon-f", title="F")
api.content.create(container=folder, type="Document", id="canon-b", title="B")
step("created")
api.content.delete(obj=site["canon-a"])
step("removed")
step.write(output)
