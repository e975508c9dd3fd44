"""Run by `txzserver run zope.conf canonical_url_script.py SITE CANONICAL OUTPUT.json`: the
urls of events made under a request whose Host is forged (evil.example), before and after the
site's canonical URL (registry txzserver.canonical_url) is set. Writes {label: [urls]}.
"""

import json
import sys

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from Testing.makerequest import makerequest
from zope.component import provideUtility
from zope.component.hooks import setSite
from zope.globalrequest import setRequest
from zope.interface import implementer

from txzserver.bus import Event, IEventPublisher

site_id, canonical, output = sys.argv[1:4]
# what a request through a front that copies the client's Host looks like to Zope
app = makerequest(globals()["app"], environ={"SERVER_NAME": "evil.example", "SERVER_PORT": "443",
                                             "HTTP_HOST": "evil.example", "HTTPS": "on"})
setRequest(app.REQUEST)
newSecurityManager(None, app.acl_users.getUser("admin").__of__(app.acl_users))
site = app[site_id]
setSite(site)

from plone import api  # noqa: E402


@implementer(IEventPublisher)
class Recorder:
    def __init__(self):
        self.urls = []

    def publish(self, events):
        self.urls.extend(e.url for e in events if isinstance(e, Event))


recorder = Recorder()
provideUtility(recorder, IEventPublisher)
results = {}


def step(label):
    transaction.commit()
    results[label], recorder.urls = recorder.urls, []


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
with open(output, "w") as f:
    json.dump(results, f)
