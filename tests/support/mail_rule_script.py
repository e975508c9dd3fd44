"""Run by `txzserver run zope.conf mail_rule_script.py SITE RECIPIENT`: a content rule on the
site root that mails RECIPIENT when content is added (Plone's own mail action, no sender of
its own: the site's, as SMTP_FROM set it)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: see sitescript

import transaction  # noqa: E402
from plone.app.contentrules.actions.mail import MailAction  # noqa: E402
from plone.app.contentrules.api import assign_rule  # noqa: E402
from plone.app.contentrules.rule import Rule  # noqa: E402
from plone.contentrules.engine.interfaces import IRuleStorage  # noqa: E402
from zope.component import getUtility  # noqa: E402
from zope.lifecycleevent.interfaces import IObjectAddedEvent  # noqa: E402

from tests.support.sitescript import open_site  # noqa: E402

site_id, recipient = sys.argv[1:3]
site = open_site(globals()["app"], site_id)
rule = Rule()
rule.title = "Mail on new content"
rule.event = IObjectAddedEvent
action = MailAction()
action.subject = "New: ${title}"
action.recipients = recipient
action.message = "${url}"
rule.actions.append(action)
getUtility(IRuleStorage)["txzserver-mail-test"] = rule
assign_rule(site, "txzserver-mail-test")
transaction.commit()
print(f"rule txzserver-mail-test mails {recipient}")
