"""Run by `txzserver run zope.conf plone_events_script.py SITE OUTPUT.json`: exercises the add-on.

Registers a recording IEventPublisher, installs the txzserver profiles, then performs one content
operation per transaction (labelled) and writes, per label, the batches the publisher received
(each event as its public dict plus "guard": sorted tokens) to OUTPUT.json.
"""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: see sitescript

import transaction  # noqa: E402
from zope.component import getUtility  # noqa: E402
from zope.event import notify  # noqa: E402
from zope.lifecycleevent import ObjectModifiedEvent  # noqa: E402

from tests.support.sitescript import Recorder, Steps, open_site  # noqa: E402
from txzserver.bus import Event  # noqa: E402

site_id, output = sys.argv[1:3]
site = open_site(globals()["app"], site_id)

from plone import api  # noqa: E402
from plone.app.contentrules import handlers as rule_handlers  # noqa: E402
from plone.contentrules.engine.interfaces import IRuleStorage  # noqa: E402
from txzserver.plone.eventqueue import pending  # noqa: E402

# each event as its public dict plus "guard" (sorted tokens), in the batches published;
# principal changes (txzserver.bus.PrincipalChange) go the same way, and are tested in
# tests/integration/test_principal_changes.py
recorder = Recorder(lambda e: dict(e.public(), guard=sorted(e.guard)), batches=True)
# after each commit, reset per-request state as the end of a request would
step = Steps(recorder, after_commit=lambda: rule_handlers.close(None))
results = step.results


setup = site.portal_setup
setup.runAllImportStepsFromProfile("profile-txzserver:default")
setup.runAllImportStepsFromProfile("profile-txzserver:example-rules")
api.user.create(email="lr@example.org", username="localreviewer", password="secret-secret-1")
folder = api.content.create(container=site, type="Folder", id="folder", title="Folder")
api.content.create(container=site, type="Folder", id="other", title="Other")
api.user.grant_roles(username="localreviewer", obj=folder, roles=["Reviewer"])
step("setup")
results["setup_info"] = {
    "registry_js": api.portal.get_registry_record("plone.bundles/txzserver.jscompilation"),
    "rules": sorted(getUtility(IRuleStorage).keys()),
}

doc = api.content.create(container=folder, type="Document", id="doc", title="A document")
step("create")

doc.title = "A document, edited"
notify(ObjectModifiedEvent(doc))
doc.description = "twice"
notify(ObjectModifiedEvent(doc))
step("edit_twice")

doc2 = api.content.create(container=folder, type="Document", id="doc2", title="Second")
doc2.title = "Second, edited before commit"
notify(ObjectModifiedEvent(doc2))
step("create_and_edit")

doc = api.content.rename(obj=doc, new_id="doc-renamed")
step("rename")

doc = api.content.move(source=doc, target=folder.aq_parent["other"])
step("move")

doc = api.content.move(source=doc, target=folder)
step("move_back")

api.content.transition(obj=doc, transition="submit")
step("submit")

api.content.transition(obj=doc, transition="publish")
step("publish")

api.content.transition(obj=doc, transition="retract")
step("retract")

api.content.create(container=folder, type="Document", id="aborted", title="Aborted")
transaction.abort()
results["abort"] = recorder.take()


def fail(*args):
    raise RuntimeError("before-commit hook fails on purpose")


api.content.create(container=folder, type="Document", id="failed", title="Failed commit")
transaction.get().addBeforeCommitHook(fail)
try:
    transaction.commit()
except RuntimeError:
    transaction.abort()
results["failed_commit"] = recorder.take()

api.content.create(container=folder, type="Document", id="kept", title="Kept")
savepoint = transaction.savepoint()
api.content.create(container=folder, type="Document", id="rolledback", title="Rolled back")
savepoint.rollback()
step("savepoint_rollback")

api.content.copy(source=folder["kept"], target=site["other"])
step("copy")

sub = api.content.create(container=site, type="Folder", id="sub", title="Sub")
api.content.create(container=sub, type="Document", id="child", title="Child")
step("create_tree")

api.content.rename(obj=site["sub"], new_id="sub2")
step("rename_tree")

api.content.delete(obj=site["sub2"])
step("delete_tree")

api.content.delete(obj=folder["doc-renamed"])
step("delete")

api.content.delete(obj=folder["kept"])
api.content.delete(obj=folder["doc2"])
step("delete_two")

# Something queued by a before-commit hook (the transaction is committing) is still published.
transaction.get().addBeforeCommitHook(
    lambda: pending().append(Event(type="notification", path=f"/{site_id}", message="late")))
step("before_commit_hook")

# Several threads commit at once: each transaction's events stay together and in order.
barrier = threading.Barrier(4)


def worker(n):
    for i in range(20):
        for j in range(3):
            pending().append(Event(type="notification", path=f"/t{n}/{i}", message=str(j)))
        if i == 0:
            barrier.wait()
        transaction.commit()


threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
results["threads"] = recorder.take()

transaction.commit()
step.write(output)
