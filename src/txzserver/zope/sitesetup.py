"""Create a Plone site (Classic UI) on first start, like the plone-backend image's SITE."""

import logging

log = logging.getLogger("txzserver")

DEFAULT_PROFILES = (
    "plone.app.contenttypes:default",
    "plonetheme.barceloneta:default",
    "plone.restapi:default",
)


def ensure_plone_site(site_id, profiles=DEFAULT_PROFILES):
    """Add Plone site ``site_id`` to the Zope root unless it exists; True if created.

    Runs as the first Manager of the root user folder (the inituser), so the site and
    its content are owned by that admin rather than by an anonymous system user.
    """
    import transaction
    import Zope2
    from AccessControl.SecurityManagement import newSecurityManager, noSecurityManager
    from AccessControl.SpecialUsers import system
    from Testing.makerequest import makerequest
    from zope.globalrequest import clearRequest, setRequest

    app = makerequest(Zope2.app())
    setRequest(app.REQUEST)
    try:
        if site_id in app.objectIds():
            log.info("Plone site /%s exists", site_id)
            return False
        from Products.CMFPlone.factory import addPloneSite
        newSecurityManager(None, _first_manager(app) or system)
        log.info("creating Plone site /%s (%s)", site_id, ", ".join(profiles))
        addPloneSite(app, site_id, extension_ids=tuple(profiles), setup_content=True)
        transaction.commit()
        log.info("created Plone site /%s", site_id)
        return True
    except Exception:
        transaction.abort()
        raise
    finally:
        noSecurityManager()
        clearRequest()
        app._p_jar.close()


def _first_manager(app):
    users = app.acl_users
    for user_id in users.getUserNames():
        user = users.getUser(user_id)
        if user is not None and "Manager" in user.getRoles():
            return user.__of__(users)
    return None
