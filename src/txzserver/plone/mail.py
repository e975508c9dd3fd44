"""Plone's outgoing mail from the instance's configuration instead of the site's registry.

The plone image writes ``<product-config txzserver-mail>`` from SMTP_HOST, SMTP_PORT,
SMTP_USER, SMTP_PASSWORD(_FILE), SMTP_FROM and SMTP_FROM_NAME (images/plone/scripts/mail_conf.py).
With it:

- every SMTP connection Plone's MailHost makes (content rules' mail action, password reset,
  contact form) goes to that host and port and logs in with that user; the password is read from
  its file at each connection, so a rotated Secret is used without a restart, and it is never
  stored in the ZODB (Plone's registry keeps ``smtp_pass`` in clear);
- ``apply_to_registry`` (run by the site script, images/plone/scripts/create_site.py) writes the
  host, port and sender into the site's mail settings, which Plone reads to decide whether mail
  is configured and whom it is from.

Plone wraps ``SMTPMailer.__init__`` to take the registry's values (Products.CMFPlone.patches.
sendmail); ours sets the configured ones after whichever constructor ran, so the order in which
the two wrappers were installed does not matter.
"""

import logging

log = logging.getLogger("txzserver.mail")

SECTION = "txzserver-mail"


def configured():
    """The ``<product-config txzserver-mail>`` keys, or None when mail is not configured so."""
    from App.config import getConfiguration
    found = (getattr(getConfiguration(), "product_config", None) or {}).get(SECTION)
    if not found or not found.get("smtp-host"):
        return None
    return found


def read_password(config):
    path = config.get("smtp-password-file")
    if not path:
        return None
    with open(path, encoding="utf-8") as file:
        return file.read().rstrip("\r\n")


def install(config=None):
    """Make every SMTPMailer use the configured transport; once per process (Zope's start)."""
    from zope.sendmail.mailer import SMTPMailer
    config = configured() if config is None else config
    if config is None or getattr(SMTPMailer.__init__, "_txzserver_mail", False):
        return False
    plone_init = SMTPMailer.__init__

    def __init__(self, *args, **kwargs):
        plone_init(self, *args, **kwargs)
        self.hostname = config["smtp-host"]
        self.port = int(config.get("smtp-port") or 25)
        self.username = config.get("smtp-user") or None
        self.password = read_password(config) if self.username else None

    __init__._txzserver_mail = True
    SMTPMailer.__init__ = __init__
    log.info("mail goes to %s:%s%s", config["smtp-host"], config.get("smtp-port") or 25,
             f" as {config['smtp-user']}" if config.get("smtp-user") else "")
    return True


def on_start(event):
    """IDatabaseOpenedWithRoot: install the transport when the instance is configured for it."""
    install()


def apply_to_registry(site, config=None):
    """Write the configured host, port and sender into ``site``'s mail settings (no user, no
    password: those stay out of the ZODB). Returns the values written, {} when not configured."""
    from plone.base.interfaces import IMailSchema
    from plone.registry.interfaces import IRegistry
    from zope.component import getUtility
    config = configured() if config is None else config
    if config is None:
        return {}
    settings = getUtility(IRegistry, context=site).forInterface(IMailSchema, prefix="plone")
    values = {"smtp_host": config["smtp-host"], "smtp_port": int(config.get("smtp-port") or 25)}
    if config.get("from-address"):
        values["email_from_address"] = config["from-address"]
    if config.get("from-name"):
        values["email_from_name"] = config["from-name"]
    for name, value in values.items():
        setattr(settings, name, value)
    return values
