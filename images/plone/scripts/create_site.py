"""create-site: make the Plone site $SITE with the default profiles plus $PROFILES.

Run by `txzserver run` (``app`` bound). With DELETE_EXISTING true (true, t, yes, y, on, 1, any
case; "false" is false), an existing site of that id is deleted first, as in the plone-backend image.
"""
import os

import transaction
from txzserver.zope.sitesetup import DEFAULT_PROFILES, ensure_plone_site

site = os.environ["SITE"]
extra = tuple(p for p in os.environ.get("PROFILES", "").replace(",", " ").split() if p)
delete = os.environ.get("DELETE_EXISTING", "").strip().lower() in ("true", "t", "yes", "y", "on", "1")
if delete and site in app.objectIds():  # noqa: F821 (bound by run)
    app.manage_delObjects([site])  # noqa: F821
    transaction.commit()
    print(f"deleted the existing site /{site}")
created = ensure_plone_site(site, profiles=DEFAULT_PROFILES + extra)
print(f"site /{site} {'created' if created else 'exists already'}")
