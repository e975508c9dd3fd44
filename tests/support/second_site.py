"""Run by `txzserver run zope.conf second_site.py SITE`: one more Plone site in the same Zope,
with the txzserver add-on and its example rule, and no example content (the cheapest site a
test of two sites needs: about half the time of the template's)."""

import sys

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from Testing.makerequest import makerequest
from zope.component.hooks import setSite
from zope.globalrequest import setRequest

from txzserver.zope.sitesetup import DEFAULT_PROFILES

site_id = sys.argv[1]
app = makerequest(globals()["app"])
setRequest(app.REQUEST)
newSecurityManager(None, app.acl_users.getUser("admin").__of__(app.acl_users))

from Products.CMFPlone.factory import addPloneSite  # noqa: E402

site = addPloneSite(app, site_id, extension_ids=DEFAULT_PROFILES, setup_content=False)
setSite(site)
for profile in ("profile-txzserver:default", "profile-txzserver:example-rules"):
    site.portal_setup.runAllImportStepsFromProfile(profile)
transaction.commit()
print(f"built /{site_id}")
