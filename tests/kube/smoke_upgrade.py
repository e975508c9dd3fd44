"""The podman smoke test's upgrade check, run inside an instance container by
`docker-entrypoint.sh run` (``app`` bound; read from stdin by tests/kube/test_podman.py):

``hold``: make a step pending in /Plone (txzserver:default back at version 1000: its step to
1001 re-imports the registry record txzserver.canonical_url) and hold the upgrade lock (the
ZODB marker, as a run of `upgrade` does), so that two upgrade Jobs started next both wait;
``release``: clear the marker; ``done``: the committed upgrades (transaction notes), the
profile's version and what is still pending. Each prints a RESULT line of JSON.
"""

import json
import sys
import time

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from AccessControl.SpecialUsers import system
from Testing.makerequest import makerequest
from txzserver.plone.upgrades import pending
from txzserver.zope.upgradelock import MARKER
from zope.component.hooks import setSite
from zope.globalrequest import setRequest

PROFILE = "txzserver:default"
HOLDER = "the smoke test"


def marker(root, holder):
    from persistent.mapping import PersistentMapping
    zodb_root = root._p_jar.root()
    if zodb_root.get(MARKER) is None:
        zodb_root[MARKER] = PersistentMapping()
    zodb_root[MARKER].update(holder=holder, since=time.time())


def upgrades(root):
    notes = []
    for record in root._p_jar.db().undoLog(0, 100000):
        note = record.get("description", "")
        note = note.decode("utf-8", "replace") if isinstance(note, bytes) else note
        if note.strip().startswith("upgrade of /Plone"):
            notes.append(note.strip())
    return notes


def main(root, command):
    root = makerequest(root)
    setRequest(root.REQUEST)
    newSecurityManager(None, system)
    site = root.Plone
    setSite(site)
    if command == "hold":
        site.portal_setup.setLastVersionForProfile(PROFILE, "1000")
        marker(root, HOLDER)
        transaction.commit()
    elif command == "release":
        marker(root, None)
        transaction.commit()
    version = site.portal_setup.getLastVersionForProfile(PROFILE)
    print("RESULT " + json.dumps({"pending": [str(step) for step in pending(site)],
                                  "version": ".".join(version), "upgrades": upgrades(root)}))
    transaction.abort()


main(app, sys.argv[1])  # noqa: F821 -- bound by `txzserver run`
