"""Subscribers turning Dexterity lifecycle and workflow events into bus Events.

Each subscriber builds the message right away (the object is in the state the event talks
about) and queues it on the current transaction (see eventqueue): nothing leaves Zope before
the commit. One user action gives one event: events re-dispatched to the children of a moved
or removed folder are ignored, a modification of an object added in the same transaction
refreshes the "created" event instead of adding a "modified" one, and repeated modifications
of one object in one transaction collapse into one event (at the position of the first).

Guards: the object's allowedRolesAndUsers at the time of the event; for a removal the guard is
taken before the object leaves its container (afterwards it has no acquisition context); for a
workflow transition it is the union of before and after, so that people who lose access learn
that the item left.

Events say no more than Plone shows: the actor goes only to those Plone's byline shows the
author to (``actor_guard``), and a move names its old path only when everyone who receives the
event could see the old location (``moved_message``).
"""

import functools
import logging
from dataclasses import replace
from datetime import datetime, timezone

from Acquisition import aq_base
from plone.uuid.interfaces import IUUID
from plone.registry.interfaces import IRegistry
from Products.CMFCore.utils import getToolByName
from zope.component import queryUtility
from zope.container.interfaces import IContainerModifiedEvent
from zope.lifecycleevent.interfaces import IObjectAddedEvent, IObjectRemovedEvent

from txzserver.bus import Event

from .eventqueue import pending
from .guard import current_user_id, object_guard

logger = logging.getLogger("txzserver.plone")

#: registry record: the site's public URL, for event urls
CANONICAL_URL = "txzserver.canonical_url"
#: registry record: may anonymous users see who made content (Plone's byline "about" info)
ANON_VIEWS_ABOUT = "plone.allow_anon_views_about"
#: tokens every connection of one kind holds: anonymous ones hold only "Anonymous";
#: logged-in ones hold "Anonymous" and "Authenticated" too (the catalog's own vocabulary)
EVERYONE, MEMBERS = "Anonymous", "Authenticated"
_REMOVAL = "removal"
_TRANSITION = "transition"


def object_path(obj):
    return "/".join(obj.getPhysicalPath())


def now_iso():
    """Current time as ISO-8601 UTC with milliseconds, e.g. 2025-01-31T12:00:00.123Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def review_state(obj):
    workflow = getToolByName(obj, "portal_workflow", None)
    if workflow is None:
        return ""
    try:
        return workflow.getInfoFor(obj, "review_state", "") or ""
    except Exception:  # no workflow for this type, or a broken one: not our business
        return ""


def object_uid(obj):
    return IUUID(obj, None) or ""


def event_url(obj, name=None):
    """The url an event gives ``obj`` (or its child ``name``): the site's canonical URL
    (registry ``txzserver.canonical_url``) plus the path inside the site, so that a forged
    Host of the editor's request never reaches every viewer; absolute_url() when none is set.
    """
    registry = queryUtility(IRegistry)
    canonical = (registry.get(CANONICAL_URL) or "").strip().rstrip("/") if registry else ""
    portal_url = getToolByName(obj, "portal_url", None)
    if canonical and portal_url is not None:
        relative = portal_url.getRelativeContentURL(obj)
        url = "/".join(part for part in (canonical, relative) if part)
    else:
        url = obj.absolute_url()
    return f"{url}/{name}" if name else url


def actor_guard():
    """Who may see an event's actor: as Plone's document byline (``show_about``), members
    always, anonymous users when the site allows anonymous users to view "about" info."""
    registry = queryUtility(IRegistry)
    anonymous = bool(registry.get(ANON_VIEWS_ABOUT, False)) if registry is not None else False
    return frozenset((EVERYONE,) if anonymous else (MEMBERS,))


def all_could_see(audience, seen_by):
    """True if every connection whose tokens meet ``audience`` also meets ``seen_by``: the
    tokens every connection holds make that more than ``audience <= seen_by``."""
    if EVERYONE in seen_by:
        return True
    if MEMBERS in seen_by:
        return EVERYONE not in audience
    return audience <= seen_by


def moved_message(obj, old_parent, old_path):
    """"moved from <old path>" when everyone who receives the event (the object's guard now)
    could see the old location (its old container's guard), else only "moved": the old
    path (a folder's and the item's old names) is not told to a new audience."""
    if all_could_see(object_guard(obj), object_guard(old_parent)):
        return f"moved from {old_path}"
    return "moved"


def build_event(obj, event_type, message="", guard=None, path=None, url=None):
    """An Event describing ``obj`` now; ``guard`` defaults to the object's current guard."""
    title = obj.Title() if callable(getattr(obj, "Title", None)) else getattr(obj, "title", "")
    return Event(
        type=event_type,
        path=path or object_path(obj),
        uid=object_uid(obj),
        url=url if url is not None else event_url(obj),
        title=str(title or ""),
        portal_type=getattr(aq_base(obj), "portal_type", "") or "",
        review_state=review_state(obj),
        actor=current_user_id(),
        actor_guard=actor_guard(),
        time=now_iso(),
        message=message,
        guard=object_guard(obj) if guard is None else guard,
    )


def _refresh(queue, index, obj):
    """Replace queued event ``index`` by a fresh description of ``obj``, keeping type and message."""
    old = queue.events[index]
    queue.replace(index, build_event(obj, old.type, message=old.message))


def _is_own_event(obj, event):
    """False for events re-dispatched by OFS to the sublocations of the object they are about."""
    return aq_base(event.object) is aq_base(obj)


def subscriber(handler):
    """Notifications are a side effect: a failure here must never break the user's edit."""
    @functools.wraps(handler)
    def safe(obj, event):
        try:
            handler(obj, event)
        except Exception:
            logger.exception("txzserver: %s failed for %r", handler.__name__, obj)
    return safe


@subscriber
def object_added(obj, event):
    if not _is_own_event(obj, event):
        return
    pending().append(build_event(obj, "created"))


@subscriber
def object_modified(obj, event):
    if IContainerModifiedEvent.providedBy(event):
        return  # a child was added, removed or reordered: not an edit of this object
    queue = pending()
    index = queue.find(object_uid(obj), ("created", "modified"))
    if index is not None and not queue.events[index].message:
        _refresh(queue, index, obj)
        return
    queue.append(build_event(obj, "modified"))


@subscriber
def object_moved(obj, event):
    """A rename or a cut/paste: "modified" at the new path, message "moved from <old path>"
    (or "moved", see ``moved_message``)."""
    if IObjectAddedEvent.providedBy(event) or IObjectRemovedEvent.providedBy(event):
        return
    if not _is_own_event(obj, event) or event.oldParent is None or event.newParent is None:
        return
    queue = pending()
    index = queue.find(object_uid(obj), ("created",))
    if index is not None:
        _refresh(queue, index, obj)  # created and moved in one transaction: created, at the end
        return
    old_path = "/".join(tuple(event.oldParent.getPhysicalPath()) + (event.oldName,))
    queue.append(build_event(obj, "modified", message=moved_message(obj, event.oldParent, old_path)))


@subscriber
def object_will_be_removed(obj, event):
    """Snapshot the removed object's description while it still has its acquisition context."""
    if not _is_own_event(obj, event):
        return
    snapshot = build_event(obj, "removed")
    pending().snapshots[(_REMOVAL, id(aq_base(obj)))] = snapshot


@subscriber
def object_removed(obj, event):
    if not _is_own_event(obj, event):
        return
    queue = pending()
    snapshot = queue.snapshots.pop((_REMOVAL, id(aq_base(obj))), None)
    if snapshot is None:
        # Removed without the will-be-removed event (suppressed events): describe it from its
        # old container, whose guard is the best approximation left.
        parent = event.oldParent
        path = "/".join(tuple(parent.getPhysicalPath()) + (event.oldName,))
        url = event_url(parent, event.oldName)
        snapshot = build_event(obj.__of__(parent), "removed", path=path, url=url,
                               guard=object_guard(parent))
    else:
        snapshot = replace(snapshot, time=now_iso())
    queue.append(snapshot)


@subscriber
def action_will_be_invoked(obj, event):
    """Remember who could see the object before a workflow action changes its permissions."""
    pending().snapshots.setdefault((_TRANSITION, id(aq_base(obj))), []).append(object_guard(obj))


@subscriber
def action_succeeded(obj, event):
    queue = pending()
    before = queue.snapshots.get((_TRANSITION, id(aq_base(obj))))
    guard = object_guard(obj)
    if before:
        guard = guard | before.pop()
    queue.append(build_event(obj, "transition", message=str(event.action or ""), guard=guard))
