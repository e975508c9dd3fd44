"""What the scripts run inside Zope by `txzserver run` (tests/support/*_script.py, through
instance.run_site_script) share: the Plone site under a request with admin logged in, a
recording IEventPublisher, commits labelled with what the publisher received, and the JSON
file they write at the end.

runpy runs a script file without putting the checkout on sys.path: each script inserts it
before importing this module.
"""

import json
import threading

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from Testing.makerequest import makerequest
from zope.component import provideUtility
from zope.component.hooks import setSite
from zope.globalrequest import setRequest
from zope.interface import implementer

from txzserver.bus import Event, IEventPublisher


def open_site(app, site_id, environ=None):
    """The Plone site ``site_id`` as the current site, under a request (``environ``: what its
    WSGI environ holds besides the defaults), with Zope's admin logged in."""
    app = makerequest(app, environ=environ or {})
    setRequest(app.REQUEST)
    newSecurityManager(None, app.acl_users.getUser("admin").__of__(app.acl_users))
    site = app[site_id]
    setSite(site)
    return site


@implementer(IEventPublisher)
class Recorder:
    """Registered as the IEventPublisher (the Zope side only calls ``publish``): keeps each
    content event the add-on publishes as ``record(event)`` (principal changes go the same
    way and are not kept); ``take()`` returns what came since the last take, as one list or,
    with ``batches``, as the non-empty batches ``publish`` got."""

    def __init__(self, record, batches=False):
        self.record, self.batches = record, batches
        self.lock = threading.Lock()
        self.taken = []
        provideUtility(self, IEventPublisher)

    def publish(self, events):
        batch = [self.record(e) for e in events if isinstance(e, Event)]
        with self.lock:
            if self.batches and batch:
                self.taken.append(batch)
            elif not self.batches:
                self.taken.extend(batch)

    def take(self):
        with self.lock:
            taken, self.taken = self.taken, []
        return taken


class Steps:
    """``step(label)`` commits the transaction (then ``after_commit()``) and keeps what the
    recorder received under ``label`` in ``results``; ``write`` saves the results as JSON."""

    def __init__(self, recorder, after_commit=None):
        self.recorder, self.after_commit = recorder, after_commit
        self.results = {}

    def __call__(self, label):
        transaction.commit()
        if self.after_commit is not None:
            self.after_commit()
        self.results[label] = self.recorder.take()

    def write(self, output):
        with open(output, "w") as f:
            json.dump(self.results, f, indent=1, sort_keys=True)
        print(f"wrote {output}")
