"""create-site, create-classic, create-volto, and `start` with SITE: make the Plone site $SITE.

Run by `txzserver run` (``app`` bound), with plone-backend's variables and their defaults:
TYPE (classic or volto), PROFILES (extra GenericSetup profiles, space or comma separated),
LANGUAGE, TIMEZONE, SETUP_CONTENT (example content), DELETE_EXISTING (delete a site of that id
first; true, t, yes, y, on, 1 in any case; "false" is false). An existing site is left alone,
except for its mail settings: with SMTP_HOST, the host, port and sender are written each run.

volto: plone.volto's "volto" distribution (plone.distribution, as Plone's own @@plone-addsite
for Volto: plone.volto:default and its content types, a site root with blocks); then the image's
profiles and PROFILES. classic: Products.CMFPlone's profile with the image's Classic UI
profiles and PROFILES; SETUP_CONTENT adds plone.app.contenttypes' example content.
"""
import os

import transaction
from AccessControl.SecurityManagement import newSecurityManager, noSecurityManager
from AccessControl.SpecialUsers import system
from Products.CMFPlone.factory import addPloneSite
from Testing.makerequest import makerequest
from txzserver.plone.mail import apply_to_registry
from txzserver.zope.sitesetup import DEFAULT_PROFILES
from zope.component.hooks import setSite
from zope.globalrequest import clearRequest, setRequest

TRUTHY = ("true", "t", "yes", "y", "on", "1")
# the image's own profiles (classic also: plone.app.caching, as plone-backend)
BASE_PROFILES = {
    "classic": (*DEFAULT_PROFILES, "plone.app.caching:default"),
    "volto": ("plone.restapi:default", "plone.app.caching:default"),
}


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in TRUTHY


def first_manager(app):
    """The first Manager of the root user folder (the admin, owner of the site), else system.
    Plone replaces the root's Zope user folder by a PluggableAuthService (PlonePAS), whose
    getUserNames fails: its users are listed with searchUsers."""
    users = app.acl_users
    if hasattr(users, "searchUsers"):
        user_ids = [found["userid"] for found in users.searchUsers()]
    else:
        user_ids = users.getUserNames()
    for user_id in user_ids:
        user = users.getUserById(user_id)
        if user is not None and "Manager" in user.getRoles():
            return user.__of__(users)
    return system


def create(app, site_id, site_type):
    extra = tuple(p for p in os.environ.get("PROFILES", "").replace(",", " ").split() if p)
    language = os.environ.get("LANGUAGE") or "en"
    timezone = os.environ.get("TIMEZONE") or "Europe/Berlin"
    content = env_flag("SETUP_CONTENT")
    profiles = BASE_PROFILES[site_type] + tuple(p for p in extra if p not in BASE_PROFILES[site_type])
    print(f"creating the {site_type} site /{site_id} (language {language}, timezone {timezone}, "
          f"example content {'yes' if content else 'no'}, profiles {', '.join(profiles)})")
    if site_type == "volto":
        site = addPloneSite(app, site_id, title="Plone", distribution_name="volto",
                            setup_content=content, default_language=language,
                            portal_timezone=timezone)
        setup = site.portal_setup
        for profile in profiles:
            setup.runAllImportStepsFromProfile(f"profile-{profile}")
    else:
        if content:
            profiles += ("plone.app.contenttypes:plone-content",)
        site = addPloneSite(app, site_id, title="Plone", extension_ids=profiles,
                            default_language=language, portal_timezone=timezone)
    setSite(None)
    return site


def configure_mail(site):
    """SMTP_HOST and the sender (<product-config txzserver-mail>, docker-entrypoint.sh) into the
    site's mail settings, at every run: a changed SMTP_FROM reaches the site with the next one."""
    setSite(site)
    try:
        written = apply_to_registry(site)
    finally:
        setSite(None)
    if written:
        transaction.commit()
        print(f"mail settings of /{site.getId()}: " + ", ".join(f"{k} {v}" for k, v in written.items()))


def main(app):
    site_id, site_type = os.environ["SITE"], os.environ.get("TYPE") or "classic"
    if site_type not in BASE_PROFILES:
        raise SystemExit(f"unknown TYPE={site_type} (classic, volto)")
    app = makerequest(app)
    setRequest(app.REQUEST)
    newSecurityManager(None, first_manager(app))
    try:
        if env_flag("DELETE_EXISTING") and site_id in app.objectIds():
            app.manage_delObjects([site_id])
            transaction.commit()
            print(f"deleted the existing site /{site_id}")
        if site_id in app.objectIds():
            print(f"site /{site_id} exists already")
        else:
            create(app, site_id, site_type)
            transaction.commit()
            print(f"site /{site_id} created")
        configure_mail(app[site_id])
    except BaseException:
        transaction.abort()
        raise
    finally:
        noSecurityManager()
        clearRequest()


main(app)  # noqa: F821 (bound by txzserver run)
