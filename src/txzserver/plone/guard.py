"""Guard tokens: who may see an object, and who a user is, in the catalog's own vocabulary.

The server decides delivery by intersecting an event's guard with the connection's tokens, never
by calling back into Zope. That is only correct if both sides use exactly the tokens the catalog
uses for ``allowedRolesAndUsers`` (roles, "user:<principal id>", "Anonymous"), so both functions
below delegate to Plone's own code instead of re-implementing it.
"""

from AccessControl import getSecurityManager
from Products.CMFCore.utils import getToolByName
from Products.CMFPlone.CatalogTool import allowedRolesAndUsers as _plone_indexer
from plone.indexer.interfaces import IIndexer
from zope.component import queryMultiAdapter

_INDEX = "allowedRolesAndUsers"


def object_guard(obj):
    """The ``allowedRolesAndUsers`` tokens the catalog would index for ``obj`` (a frozenset).

    The registered IIndexer is used when there is one (add-ons may override the indexer), else
    Products.CMFPlone's indexer function. ``obj`` must be acquisition-wrapped in its container.
    """
    catalog = getToolByName(obj, "portal_catalog", None)
    indexer = None
    if catalog is not None:
        indexer = queryMultiAdapter((obj, catalog), IIndexer, name=_INDEX)
    if indexer is not None:
        tokens = indexer()
    else:
        tokens = getattr(_plone_indexer, "callable", _plone_indexer)(obj)
    return frozenset(tokens or ())


def user_tokens(context, user=None):
    """The tokens the catalog searches with for ``user`` (default: the current user), sorted.

    Same as ``portal_catalog._listAllowedRolesAndUsers(user)``: the user's roles and groups as
    "user:<group id>", "user:<user id>" and "Anonymous" (or only "Anonymous" for anonymous).
    """
    if user is None:
        user = getSecurityManager().getUser()
    catalog = getToolByName(context, "portal_catalog")
    return sorted(set(catalog._listAllowedRolesAndUsers(user)))


def current_user_id():
    """The id of the user the current request runs as, "" for anonymous."""
    user = getSecurityManager().getUser()
    if user is None:
        return ""
    return user.getId() or ""
