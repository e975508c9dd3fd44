"""The add-on's side of background tasks: task requests skip CSRF checks, and an example.

Example (Classic UI or a script): ``@@txzserver-reindex-folder`` on a folder queues one task per
item, each a POST to the item's ``@@txzserver-reindex``; that view refuses to run unless it is
a task (``is_task``), and reindexes its object in the catalog as the user who queued the work.

Task requests are made by the server from committed ``add()`` calls, never by a browser, so
plone.protect's automatic CSRF check (which would turn a task's writes into a redirect to
@@confirm-action) is switched off for them (``IDisableCSRFProtection``).
"""

import logging

from plone.protect.interfaces import IDisableCSRFProtection
from Products.Five.browser import BrowserView
from zExceptions import Forbidden
from zope.interface import alsoProvides

from txzserver.tasks import add, is_task

log = logging.getLogger("txzserver.plone")


def mark_task_request(event):
    """IPubStart subscriber: task requests carry no CSRF token and need none."""
    if is_task(event.request):
        alsoProvides(event.request, IDisableCSRFProtection)


def _path(obj):
    return "/".join(obj.getPhysicalPath())


class ReindexFolderView(BrowserView):
    """Queue a reindex of each item of this folder (after this request commits)."""

    def __call__(self):
        queue = self.request.form.get("queue", "default")
        ids = list(self.context.objectIds())
        for item_id in ids:
            add(f"{_path(self.context)}/{item_id}/@@txzserver-reindex", method="POST", queue=queue)
        self.request.response.setHeader("Content-Type", "text/plain; charset=utf-8")
        return f"queued {len(ids)} reindex task(s) on queue {queue}\n"


class ReindexView(BrowserView):
    """Reindex this object; only as a task (403 otherwise)."""

    def __call__(self):
        if not is_task(self.request):
            raise Forbidden("@@txzserver-reindex runs only as a txzserver task")
        self.context.reindexObject()
        log.info("task reindexed %s", _path(self.context))
        self.request.response.setHeader("Content-Type", "text/plain; charset=utf-8")
        return f"reindexed {_path(self.context)}\n"
