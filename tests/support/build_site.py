"""Run by `txzserver run zope.conf build_site.py SITE BIGFILE FILEID`: builds the test site."""

import shutil
import sys
import tempfile

import transaction
from AccessControl.SecurityManagement import newSecurityManager
from Testing.makerequest import makerequest
from zope.globalrequest import setRequest

from txzserver.zope.sitesetup import ensure_plone_site

site_id, big_path, file_id = sys.argv[1:4]
app = globals()["app"]
ensure_plone_site(site_id)
app._p_jar.sync()
app = makerequest(app)
setRequest(app.REQUEST)
admin = app.acl_users.getUser("admin").__of__(app.acl_users)
newSecurityManager(None, admin)
site = app[site_id]

from plone import api  # noqa: E402
from plone.namedfile.file import NamedBlobFile  # noqa: E402
from zope.component.hooks import setSite  # noqa: E402

setSite(site)
# The txzserver add-on (toast JS, principal view) and its example rule
# "notify Reviewers when content is submitted".
for profile in ("profile-txzserver:default", "profile-txzserver:example-rules"):
    site.portal_setup.runAllImportStepsFromProfile(profile)
# NamedBlobFile moves an open file into the blob storage: give it a copy.
with tempfile.NamedTemporaryFile(delete=False, dir=".") as tmp:
    with open(big_path, "rb") as src:
        shutil.copyfileobj(src, tmp)
with open(tmp.name, "rb") as data:
    api.content.create(container=site, type="File", id=file_id, title="Big file",
                       file=NamedBlobFile(data=data, filename=file_id,
                                          contentType="application/octet-stream"))
transaction.commit()
print(f"built /{site_id} with /{site_id}/{file_id}")
