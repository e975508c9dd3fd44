"""Run a task as the user who queued it: the one hand-off into Zope's user folders.

A task request carries no credentials. Its environ names the user (``txzserver.task.runas``)
and the physical path of the user folder that holds it (``txzserver.task.userfolder``); no HTTP
client can set these keys (client headers only become ``HTTP_*`` keys). Two methods learn to
read them, and only them, on task requests:

- ``BasicUserFolder.authenticate`` (Zope's own user folder, e.g. the root ``acl_users`` holding
  the admin): returns that user without a password;
- ``PluggableAuthService._extractUserIds`` (Plone's ``acl_users``): returns that user id as the
  only extracted, authenticated id, so PAS still looks the user up with its properties, groups
  and roles.

Authorization is untouched: the user folder still checks that this user may publish the object.
A user folder at another path ignores the keys (it falls back to its normal behaviour). With an
empty folder path (a queue's ``task-user``) the first user folder knowing the id is used.
Tested by ``tests/unit/test_tasks_auth.py`` and the integration tests (tasks run as admin, as a
Plone member, as the task user).
"""

from AccessControl.userfolder import BasicUserFolder

from .task import RUN_AS_KEY, TASK_KEY, USER_FOLDER_KEY

try:
    from Products.PluggableAuthService.PluggableAuthService import PluggableAuthService
except ImportError:  # Zope without PAS: only Zope's user folders
    PluggableAuthService = None

_ORIGINALS = {}


def task_user_id(folder, request):
    """The user id a task request runs as in ``folder``, or None (not a task, not this folder)."""
    environ = getattr(request, "environ", None)
    if not isinstance(environ, dict) or not environ.get(TASK_KEY):
        return None
    userid = environ.get(RUN_AS_KEY)
    if not userid:
        return None
    wanted = environ.get(USER_FOLDER_KEY) or ""
    if wanted and wanted != "/".join(folder.getPhysicalPath()):
        return None
    return userid


def _authenticate(self, name, password, request):
    userid = task_user_id(self, request)
    if userid is not None:
        user = self.getUserById(userid)
        if user is not None:
            return user
    return _ORIGINALS["authenticate"](self, name, password, request)


def _extract_user_ids(self, request, plugins):
    userid = task_user_id(self, request)
    if userid is not None:
        info = self._verifyUser(plugins, user_id=userid)
        if info:
            return [(info["id"], info["login"])]
    return _ORIGINALS["extract"](self, request, plugins)


def apply():
    """Install both (idempotent)."""
    if "authenticate" not in _ORIGINALS:
        _ORIGINALS["authenticate"] = BasicUserFolder.authenticate
        BasicUserFolder.authenticate = _authenticate
    if PluggableAuthService is not None and "extract" not in _ORIGINALS:
        _ORIGINALS["extract"] = PluggableAuthService._extractUserIds
        PluggableAuthService._extractUserIds = _extract_user_ids
