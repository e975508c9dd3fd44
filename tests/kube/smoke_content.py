"""The content of the podman smoke test's burst and task checks, made inside an instance
container by `docker-entrypoint.sh run` (``app`` bound; read from stdin by
tests/kube/test_podman.py), or, with ``--commits``, the ZODB's record of committed task runs.

``make FOLDERS PER_FOLDER TASK_ITEMS``: /Plone/burst/b0..b{FOLDERS-1} with PER_FOLDER private
Documents each and /Plone/queued with TASK_ITEMS Documents, one transaction per folder, once.
A script process has no event bus: making them publishes no event (the burst is the workflow
transitions that follow, through an instance).
``commits``: the committed transactions whose note (Zope's: the physical path of what was
published, ``/Plone/queued/item-1/txzserver-reindex/__call__``) is a task run of
@@txzserver-reindex, {note: count}, and the task ids in the done ledger; as JSON.
"""

import json
import sys

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from AccessControl.SpecialUsers import system
from plone.dexterity.utils import createContentInContainer
from Testing.makerequest import makerequest
from zope.component.hooks import setSite
from zope.globalrequest import setRequest

TASK_VIEW = "/txzserver-reindex/__call__"


def folder(container, name):
    if name not in container.objectIds():
        createContentInContainer(container, "Folder", id=name, title=name, checkConstraints=False)
    return container[name]


def fill(container, count, prefix):
    existing = set(container.objectIds())
    for index in range(count):
        name = f"{prefix}-{index}"
        if name not in existing:
            createContentInContainer(container, "Document", id=name, title=name,
                                     checkConstraints=False)
    transaction.commit()


def make(root, folders, per_folder, task_items):
    site = root.Plone
    setSite(site)
    burst = folder(site, "burst")
    for number in range(folders):
        fill(folder(burst, f"b{number}"), per_folder, "doc")
    fill(folder(site, "queued"), task_items, "item")
    return {"burst": sum(len(burst[f"b{n}"].objectIds()) for n in range(folders)),
            "queued": len(site["queued"].objectIds())}


def commits(root):
    counts = {}
    for record in root._p_jar.db().undoLog(0, 100000):
        note = record.get("description", "")
        note = note.decode("utf-8", "replace") if isinstance(note, bytes) else note
        if note.strip().endswith(TASK_VIEW):
            counts[note.strip()] = counts.get(note.strip(), 0) + 1
    ledger = root._p_jar.root().get("txzserver.tasks.done", {})
    done = sorted(task for period in ledger.values() for task in period)
    return {"commits": counts, "ledger": done}


def main(root, argv):
    root = makerequest(root)
    setRequest(root.REQUEST)
    newSecurityManager(None, system)
    if argv[0] == "make":
        result = make(root, *(int(value) for value in argv[1:4]))
    else:
        result = commits(root)
    print("RESULT " + json.dumps(result))


main(app, sys.argv[1:])  # noqa: F821 -- bound by `txzserver run`
