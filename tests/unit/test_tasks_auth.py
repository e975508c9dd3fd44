"""txzserver.tasks.auth: only task requests (environ keys no HTTP client can set) run as the
user who queued them, and only in the user folder they name."""

from types import SimpleNamespace

from txzserver.tasks.auth import task_user_id
from txzserver.tasks.task import RUN_AS_KEY, TASK_KEY, USER_FOLDER_KEY


class Folder:
    def __init__(self, path):
        self.path = path

    def getPhysicalPath(self):
        return self.path


ROOT_USERS = Folder(("", "acl_users"))
PLONE_USERS = Folder(("", "Plone", "acl_users"))


def request(**environ):
    return SimpleNamespace(environ=environ)


def test_a_task_request_runs_as_its_user_in_its_folder():
    task = request(**{TASK_KEY: "t1", RUN_AS_KEY: "jane", USER_FOLDER_KEY: "/Plone/acl_users"})
    assert task_user_id(PLONE_USERS, task) == "jane"
    assert task_user_id(ROOT_USERS, task) is None  # another folder: its normal behaviour


def test_an_empty_folder_path_means_any_folder_knowing_the_user():
    task = request(**{TASK_KEY: "t1", RUN_AS_KEY: "robot", USER_FOLDER_KEY: ""})
    assert task_user_id(ROOT_USERS, task) == "robot"
    assert task_user_id(PLONE_USERS, task) == "robot"


def test_http_requests_are_never_task_requests():
    # What a client can send becomes HTTP_* keys; the task keys stay absent.
    forged = request(HTTP_X_TXZSERVER_TASK="1", HTTP_TXZSERVER_TASK_RUNAS="admin")
    assert task_user_id(ROOT_USERS, forged) is None
    assert task_user_id(ROOT_USERS, request(**{RUN_AS_KEY: "admin"})) is None  # not marked
    assert task_user_id(ROOT_USERS, request(**{TASK_KEY: "t1"})) is None  # nobody to run as
    assert task_user_id(ROOT_USERS, SimpleNamespace()) is None  # no environ at all
