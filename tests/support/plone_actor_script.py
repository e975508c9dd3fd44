"""Run by `txzserver run zope.conf plone_actor_script.py SITE OUTPUT.json`: what the add-on's
events tell about their author and a moved item's old path, on a real Plone site.

Records, per labelled transaction, each published Event's wire form (guards included), and the
catalog tokens of an anonymous user and of a member as the WebSocket handshake computes them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: see sitescript

from AccessControl.SpecialUsers import nobody  # noqa: E402
from tests.support.sitescript import Recorder, Steps, open_site  # noqa: E402

site_id, output = sys.argv[1:3]
site = open_site(globals()["app"], site_id)

from plone import api  # noqa: E402
from txzserver.plone.guard import user_tokens  # noqa: E402

step = Steps(Recorder(lambda e: e.to_wire().decode()))
results = step.results


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

step.write(output)
