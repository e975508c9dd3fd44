"""Content-rule action "Send notification": a toast for chosen roles and groups.

Site administrators already describe "who should hear about what" with content rules (trigger,
conditions); this action lets such a rule end in a live notification instead of an email. The
message is a template interpolated by plone.stringinterp (${title}, ${url}, ${user_fullname}...).
The guard is built from the chosen roles and groups: the role names themselves (users having the
role globally carry it in their tokens), "user:<id>" for every principal that has one of the
roles *locally* on the object (a Reviewer of one folder only), and "user:<group id>" for the
chosen groups. The event goes through the same after-commit queue as the lifecycle events.
"""

import logging

from Acquisition import aq_inner
from OFS.SimpleItem import SimpleItem
from plone.app.contentrules.actions import ActionAddForm, ActionEditForm
from plone.app.contentrules.browser.formhelper import ContentRuleFormWrapper
from plone.autoform import directives
from plone.contentrules.rule.interfaces import IExecutable, IRuleElementData
from plone.stringinterp.interfaces import IStringInterpolator
from Products.CMFCore.utils import _mergedLocalRoles
from z3c.form.browser.checkbox import CheckBoxFieldWidget
from zope import schema
from zope.component import adapter
from zope.i18nmessageid import MessageFactory
from zope.interface import Interface, implementer

from .eventqueue import queue
from .events import build_event

_ = MessageFactory("txzserver")
logger = logging.getLogger("txzserver.plone")

ELEMENT = "txzserver.actions.Notification"


class INotificationAction(Interface):
    """The configurable part of the action (also the schema of its add/edit forms)."""

    message = schema.Text(
        title=_("Message"),
        description=_("Shown in the notification. Substitutions such as ${title}, ${url}, "
                      "${user_fullname} or ${review_state_title} are replaced."),
        required=True,
        default="${title} (${url}) needs your attention",
    )

    directives.widget("target_roles", CheckBoxFieldWidget)
    target_roles = schema.Set(
        title=_("Roles"),
        description=_("Users with one of these roles on the item (globally or locally) are "
                      "notified."),
        value_type=schema.Choice(vocabulary="plone.app.vocabularies.Roles"),
        required=False,
        default=set(),
    )

    target_groups = schema.List(
        title=_("Groups"),
        description=_("Ids of groups whose members are notified, one per line."),
        value_type=schema.TextLine(),
        required=False,
        default=[],
    )


@implementer(INotificationAction, IRuleElementData)
class NotificationAction(SimpleItem):
    """The persistent action stored in a rule."""

    message = ""
    target_roles = frozenset()
    target_groups = ()

    element = ELEMENT

    @property
    def summary(self):
        who = sorted(self.target_roles or ()) + [f"group {g}" for g in self.target_groups or ()]
        return _("Notify ${who}: ${message}",
                 mapping={"who": ", ".join(who) or "nobody", "message": self.message})


def notification_guard(obj, roles, groups):
    """Guard tokens for the chosen roles and groups on ``obj`` (see the module docstring)."""
    roles = set(roles or ())
    guard = set(roles)
    if roles:
        for principal, local_roles in _mergedLocalRoles(obj).items():
            if roles.intersection(local_roles):
                guard.add(f"user:{principal}")
    guard.update(f"user:{group}" for group in groups or () if group)
    return frozenset(guard)


@implementer(IExecutable)
@adapter(Interface, INotificationAction, Interface)
class NotificationActionExecutor:
    """Queues a "notification" Event about the triggering object (or the rule's context)."""

    def __init__(self, context, element, event):
        self.context = context
        self.element = element
        self.event = event

    def __call__(self):
        obj = getattr(self.event, "object", None)
        if obj is None or not hasattr(obj, "getPhysicalPath"):
            obj = aq_inner(self.context)
        try:
            message = IStringInterpolator(obj)(self.element.message or "")
            guard = notification_guard(obj, self.element.target_roles, self.element.target_groups)
            queue(build_event(obj, "notification", message=message, guard=guard))
        except Exception:
            # A notification is a side effect: never fail the user's transition or edit for it.
            logger.exception("txzserver: notification action failed for %r", obj)
        return True


class NotificationAddForm(ActionAddForm):
    schema = INotificationAction
    label = _("Add notification action")
    description = _("Shows a live notification to users with the chosen roles or groups.")
    form_name = _("Configure element")
    Type = NotificationAction


class NotificationAddFormView(ContentRuleFormWrapper):
    form = NotificationAddForm


class NotificationEditForm(ActionEditForm):
    schema = INotificationAction
    label = _("Edit notification action")
    description = _("Shows a live notification to users with the chosen roles or groups.")
    form_name = _("Configure element")


class NotificationEditFormView(ContentRuleFormWrapper):
    form = NotificationEditForm
