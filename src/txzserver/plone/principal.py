"""Who a WebSocket client is, in guard tokens, and when that changes.

``@@txzserver-principal``: the server calls this view for a handshake whose credentials it has
not cached (txzserver.websocket.principals), forwarding the handshake's cookies and
Authorization header, so Plone's own authentication (PAS, sessions, basic auth) decides who is
connecting; after that, events are matched against the returned tokens in memory. The view is
public: anonymous callers simply get ``{"userid": null, "tokens": ["Anonymous"]}``.

Principal changes (below): a transaction that changes a user's global roles or groups, a
password, removes a user or group or logs a user out sends, once committed, a
``PrincipalChange`` with the affected users' tokens computed before the commit; every instance
updates its live connections and drops cached lookups of those users.
"""

import functools
import importlib
import json
import logging

import transaction
from Products.Five.browser import BrowserView
from Products.CMFCore.utils import getToolByName
from zope.component.hooks import getSite

from txzserver.aftercommit import AfterCommitQueue, Pending
from txzserver.bus import PrincipalChange

from .eventqueue import _publish as publish_events
from .guard import current_user_id, user_tokens

logger = logging.getLogger("txzserver.plone")


def _portal_path(context):
    """The path of the Plone site ``context`` is in: what a connection's ``site`` is."""
    return "/".join(getToolByName(context, "portal_url").getPortalObject().getPhysicalPath())


class PrincipalView(BrowserView):
    def __call__(self):
        site = getToolByName(self.context, "portal_url").getPortalObject()
        data = {
            "userid": current_user_id() or None,
            "tokens": user_tokens(self.context),
            "site_path": _portal_path(site),
            "site_url": site.absolute_url(),
        }
        response = self.request.response
        response.setHeader("Content-Type", "application/json; charset=utf-8")
        response.setHeader("Cache-Control", "no-store")
        return json.dumps(data)


# Principal changes: every instance updates its connections and drops cached lookups
#
# What Plone 6.2 fires (read in Products.PluggableAuthService and Products.PlonePAS):
# PrincipalAddedToGroup / PrincipalRemovedFromGroup (ZODBGroupManager, Plone's source_groups),
# PrincipalDeleted (PlonePAS _doDelUser), GroupDeleted (portal_groups.removeGroup),
# CredentialsUpdated (a new password: Basic auth with the old one must stop working),
# UserLoggedOutEvent (portal_membership.logoutUser). Global role changes fire nothing: the
# role manager is watched instead (``watch_role_manager``). Local roles (the sharing page,
# ILocalrolesModifiedEvent) change who may see an object, which each event's guard is
# computed from anyway, not a user's tokens; IPropertiesUpdatedEvent (fired at every login
# for login_time) changes no tokens either: neither is listened to.


class PendingPrincipals(Pending):
    """Ids of principals (users or groups) changed by one transaction, and users logged out."""

    def __init__(self):
        super().__init__()
        self.logged_out = []

    def clear(self):
        super().clear()
        self.logged_out = []

    def checkpoint(self):
        return list(self.items), list(self.logged_out)

    def restore(self, checkpoint):
        items, logged_out = checkpoint
        self.items, self.logged_out = list(items), list(logged_out)


def _hand_over(changes):
    """After commit: the PrincipalChange computed before the commit (``_compute``), to every
    instance over the event bus (or to this process's hub without one)."""
    publish_events(changes)


def _principal_id(principal):
    if isinstance(principal, str):
        return principal
    getter = getattr(principal, "getId", None)
    return getter() if callable(getter) else None


def principal_changed(principal):
    """Record that ``principal``'s (a user's or group's, object or id) tokens may have changed."""
    pid = _principal_id(principal)
    if pid:
        _pending().append(pid)


def _pending():
    txn = transaction.get()
    state = PRINCIPALS.pending(txn)
    if not getattr(state, "hooked", False):
        state.hooked = True
        txn.addBeforeCommitHook(_compute, args=(state,))
    return state


def _compute(state):
    """Before commit (the transaction's changes are all there): the tokens of every changed
    user now, the users of changed groups included; what no longer exists is ``removed``."""
    state.hooked = False
    ids = list(dict.fromkeys(state.items))
    logged_out = list(dict.fromkeys(state.logged_out))
    if not ids and not logged_out:
        return
    users, removed, site_path = {}, [], ""
    try:
        site = getSite()
        acl_users = getToolByName(site, "acl_users", None) if site is not None else None
        if acl_users is not None:
            # the tokens are this site's: the change applies to its connections only (the
            # site path PrincipalView names, the portal's even in a child site)
            site_path = _portal_path(site)
            for pid, user in _affected_users(acl_users, ids, removed):
                users[pid] = user_tokens(site, user)
        else:  # not in a Plone site (the Zope root's user folder): forget them, tokens unknown
            logged_out += ids
    except Exception:  # a side effect: it must never make the user's change fail to commit
        logger.exception("txzserver: computing the tokens of changed principals %s failed", ids)
        users, removed = {}, []
        logged_out += ids
    # what the after-commit hook hands over: the change instead of the ids
    state.items = [PrincipalChange(users=users, removed=tuple(removed), logged_out=tuple(logged_out),
                                   site=site_path)]
    state.logged_out = []
    logger.info("tokens recomputed for changed principals: %s%s", ", ".join(sorted(users)) or "-",
                f"; removed {', '.join(removed)}" if removed else "")


def _affected_users(acl_users, ids, removed, limit=10000):
    """(user id, user) of the users ``ids`` name, directly or as members of groups (nested
    groups followed); ids that are neither a user nor a group any more go to ``removed``."""
    seen = set()
    todo = list(ids)
    while todo and len(seen) < limit:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        user = acl_users.getUserById(pid)
        if user is not None and not _is_group(user):
            yield pid, user
            continue
        members = _group_members(acl_users, pid)
        if members is None:
            removed.append(pid)
        else:
            todo.extend(members)


def _is_group(principal):
    is_group = getattr(principal, "isGroup", None)
    return bool(is_group()) if callable(is_group) else False


def _group_members(acl_users, group_id):
    """Member ids of group ``group_id``, or None when there is no such group."""
    portal_groups = getToolByName(acl_users, "portal_groups", None)
    group = portal_groups.getGroupById(group_id) if portal_groups is not None else None
    if group is None:
        return None
    return list(group.getGroupMemberIds() or ())


# PAS event subscribers (configure.zcml)

def on_group_membership(event):
    principal_changed(event.principal)


def on_principal_deleted(event):
    principal_changed(event.principal)


def on_credentials_updated(event):
    """A new password: the user's live connections are closed like at a logout (those opened
    with the old password must not stay; its tokens did not change)."""
    on_logged_out(event)


def on_logged_out(event):
    """Every instance closes this user's live connections in this site (4001) and forgets
    its cached lookups: see ``Hub.change_principals``."""
    pid = _principal_id(event.principal)
    if pid:
        _pending().logged_out.append(pid)


# Global roles: the role manager fires no event, so its three writing methods are watched

_WATCHED = (("Products.PluggableAuthService.plugins.ZODBRoleManager", "ZODBRoleManager",
             ("assignRoleToPrincipal", "removeRoleFromPrincipal")),
            ("Products.PlonePAS.plugins.role", "GroupAwareRoleManager", ("assignRolesToPrincipal",)))


def watch_role_manager(event=None):
    """Wrap the role managers' methods that change a principal's global roles so that the
    change is recorded (``principal_changed``). Idempotent; the one place of this patch
    (tests/integration/test_principal_changes.py proves it with plone.restapi's role edit)."""
    for module_name, class_name, methods in _WATCHED:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        for name in methods:
            original = cls.__dict__.get(name)
            if original is None or getattr(original, "_txzserver_watched", False):
                continue
            setattr(cls, name, _watched(original))


def _watched(original):
    @functools.wraps(original)
    def watched(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        principal_id = kwargs.get("principal_id", args[1] if len(args) > 1 else None)
        principal_changed(principal_id)
        return result
    watched._txzserver_watched = True
    return watched


PRINCIPALS = AfterCommitQueue("txzserver.plone.principals", _hand_over, PendingPrincipals)
