"""Run by `txzserver run zope.conf plone_actor_script.py SITE OUTPUT.json`: what the add-on's
events tell about their author and a moved item's old path, on a real Plone site.

Records, per labelled transaction, each published Event's wire form (guards included), and the
catalog tokens of an anonymous user and of a member as the WebSocket handshake computes them.
"""

import json
import sys
import threading

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from AccessControl.SpecialUsers import nobody
from Testing.makerequest import makerequest
from zope.component import provideUtility
from zope.component.hooks import setSite
from zope.globalrequest import setRequest
from zope.interface import implementer

from txzserver.bus import Event, IEventPublisher

site_id, output = sys.argv[1:3]
app = makerequest(globals()["app"])
setRequest(app.REQUEST)
newSecurityManager(None, app.acl_users.getUser("admin").__of__(app.acl_users))
site = app[site_id]
setSite(site)

from plone import api  # noqa: E402
from txzserver.plone.guard import user_tokens  # noqa: E402


@implementer(IEventPublisher)
class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def publish(self, events):
        with self.lock:
            self.events.extend(e.to_wire().decode() for e in events if isinstance(e, Event))

    def take(self):
        with self.lock:
            events, self.events = self.events, []
        return events


recorder = Recorder()
provideUtility(recorder, IEventPublisher)
results = {}


def step(label):
    transaction.commit()
    results[label] = recorder.take()


site.portal_setup.runAllImportStepsFromProfile("profile-txzserver:default")
member = api.user.create(email="mia@example.org", username="mia", password="secret-secret-1")
results["tokens"] = {"anonymous": user_tokens(site, nobody),
                     "member": user_tokens(site, member.getUser())}
secret = api.content.create(container=site, type="Folder", id="secret", title="Secret")
public = api.content.create(container=site, type="Folder", id="public", title="Public")
public2 = api.content.create(container=site, type="Folder", id="public2", title="Public 2")
for folder in (public, public2):
    api.content.transition(obj=folder, transition="publish")
doc = api.content.create(container=secret, type="Document", id="doc", title="Doc")
api.content.transition(obj=doc, transition="publish")
step("setup")

api.portal.set_registry_record("plone.allow_anon_views_about", False)
doc.setTitle("Edited, authors hidden from anonymous users")
doc.reindexObject()
from zope.event import notify  # noqa: E402
from zope.lifecycleevent import ObjectModifiedEvent  # noqa: E402
notify(ObjectModifiedEvent(doc))
step("edit_hidden")

api.portal.set_registry_record("plone.allow_anon_views_about", True)
notify(ObjectModifiedEvent(doc))
step("edit_shown")

api.content.move(source=site["secret"]["doc"], target=site["public"])
step("out_of_secret")
api.content.move(source=site["public"]["doc"], target=site["public2"])
step("public_to_public")

draft = api.content.create(container=site["secret"], type="Document", id="draft", title="Draft")
step("draft")
api.content.rename(obj=draft, new_id="draft-renamed")  # private, in its private folder
step("private_rename")

with open(output, "w") as f:
    json.dump(results, f, indent=1, sort_keys=True)
print(f"wrote {output}")
