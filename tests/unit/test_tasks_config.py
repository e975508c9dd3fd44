"""<task-queue NAME> sections -> ServerSettings.task_queues; the run-as hand-off (tasks/auth.py)."""

import pytest

from txzserver.config import ConfigError, load
from txzserver.config.datatypes import TaskQueueSettings
from txzserver.config.settings import ServerSettings, SettingsError
from txzserver.config.datatypes import Listener
from txzserver.tasks import auth

HTTP = Listener("http", "127.0.0.1", 8080)


def conf(tmp_path, text, threads=4):
    path = tmp_path / "zope.conf"
    path.write_text(f"instancehome {tmp_path}\nserver-threads {threads}\n"
                    f"<http-server>\n  address 8080\n</http-server>\n{text}\n"
                    "<zodb_db main>\n  <mappingstorage/>\n  mount-point /\n</zodb_db>\n")
    return str(path)


def test_sections_become_queue_settings(tmp_path):
    _, settings = load(conf(tmp_path, "<task-queue default>\n</task-queue>\n"
                                      "<task-queue bulk>\n  backend zmq\n  concurrency 2\n  retries 5\n"
                                      "  retry-delay 2s\n  retry-max-delay 1m\n  task-user robot\n"
                                      "  push tcp://broker:5561\n  pull tcp://broker:5562\n</task-queue>\n"
                                      "<event-bus>\n  curve off\n</event-bus>",
                                threads=4))
    default, bulk = settings.task_queues
    assert default == TaskQueueSettings("default")
    assert bulk == TaskQueueSettings("bulk", "zmq", 2, 5, 2.0, 60.0, "robot", "tcp://broker:5561",
                                     "tcp://broker:5562")


def test_schema_defaults_equal_class_defaults(tmp_path):
    _, settings = load(conf(tmp_path, "<task-queue default>\n</task-queue>"))
    assert settings.task_queues == (TaskQueueSettings(),)


def test_without_sections_one_local_default_queue_when_threads_allow():
    assert ServerSettings((HTTP,), threads=2).task_queues == (TaskQueueSettings("default"),)
    assert ServerSettings((HTTP,), threads=1).task_queues == ()


def test_tasks_never_take_every_publisher_thread(tmp_path):
    with pytest.raises(ConfigError, match="must stay below server-threads"):
        load(conf(tmp_path, "<task-queue a>\n  concurrency 2\n</task-queue>\n"
                            "<task-queue b>\n  concurrency 2\n</task-queue>", threads=4))
    with pytest.raises(SettingsError):
        ServerSettings((HTTP,), threads=1, task_queues=(TaskQueueSettings(),))


def test_bad_values_are_reported_with_their_line(tmp_path):
    with pytest.raises(ConfigError, match=r"backend must be one of local, zmq, nats, not 'redis' \(line 7"):
        load(conf(tmp_path, "<task-queue default>\n  backend redis\n</task-queue>"))
    with pytest.raises(ConfigError, match="frobnicate"):
        load(conf(tmp_path, "<task-queue default>\n  frobnicate 1\n</task-queue>"))
    with pytest.raises(ConfigError):
        load(conf(tmp_path, "<task-queue>\n</task-queue>"))  # a queue needs a name


NATS_BUS = "<event-bus>\n  backend nats\n  nats-server nats://127.0.0.1:4222\n</event-bus>\n"


def test_a_nats_queue_takes_its_keys_and_defaults(tmp_path):
    _, settings = load(conf(tmp_path, NATS_BUS + "<task-queue default>\n  backend nats\n</task-queue>\n"
                            "<task-queue bulk>\n  backend nats\n  ack-wait 2m\n  max-deliver 3\n"
                            "  max-age 7d\n  replicas 3\n</task-queue>"))
    default, bulk = settings.task_queues
    assert default == TaskQueueSettings("default", "nats")
    assert (default.ack_wait, default.max_deliver, default.max_age, default.replicas) == (
        30.0, 10, 86400.0, 1)
    assert (bulk.ack_wait, bulk.max_deliver, bulk.max_age, bulk.replicas) == (120.0, 3, 604800.0, 3)


def test_a_nats_queue_needs_a_nats_event_bus(tmp_path):
    queue = "<task-queue default>\n  backend nats\n</task-queue>"
    with pytest.raises(ConfigError, match="needs an <event-bus> with backend nats"):
        load(conf(tmp_path, queue))
    with pytest.raises(ConfigError, match="needs an <event-bus> with backend nats"):
        load(conf(tmp_path, "<event-bus>\n  curve off\n</event-bus>\n" + queue))


def test_bad_nats_queue_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="letters, digits, - and _"):
        load(conf(tmp_path, NATS_BUS + "<task-queue bulk.jobs>\n  backend nats\n</task-queue>"))
    for key in ("ack-wait 0s", "max-deliver 0", "max-age 10s", "replicas 6"):
        with pytest.raises(ConfigError, match="ack-wait must be at least 1s"):
            load(conf(tmp_path, NATS_BUS + f"<task-queue q>\n  backend nats\n  {key}\n</task-queue>"))
    with pytest.raises(ConfigError, match="publish-wait must be 0s to 60s"):
        load(conf(tmp_path, NATS_BUS + "<task-queue q>\n  backend nats\n  publish-wait 2m\n</task-queue>"))


def test_publish_wait_defaults_to_5s_and_may_be_off(tmp_path):
    _, settings = load(conf(tmp_path, NATS_BUS + "<task-queue default>\n  backend nats\n</task-queue>\n"
                            "<task-queue bulk>\n  backend nats\n  publish-wait 0s\n</task-queue>"))
    default, bulk = settings.task_queues
    assert (default.publish_wait, bulk.publish_wait) == (5.0, 0.0)


def test_duplicate_names_are_refused():
    with pytest.raises(SettingsError, match="same name"):
        ServerSettings((HTTP,), threads=4, task_queues=(TaskQueueSettings("a"), TaskQueueSettings("a")))


class Folder:
    def __init__(self, path):
        self.path = path

    def getPhysicalPath(self):
        return tuple(self.path.split("/"))


class Request:
    def __init__(self, **environ):
        self.environ = environ


TASK = {"txzserver.task": "t1", "txzserver.task.runas": "jane",
        "txzserver.task.userfolder": "/Plone/acl_users"}


def test_only_task_requests_name_a_user_and_only_to_their_user_folder():
    plone, root = Folder("/Plone/acl_users"), Folder("/acl_users")
    assert auth.task_user_id(plone, Request(**TASK)) == "jane"
    assert auth.task_user_id(root, Request(**TASK)) is None
    forged = {k: v for k, v in TASK.items() if k != "txzserver.task"}
    forged["HTTP_X_TXZSERVER_TASK"] = "t1"
    assert auth.task_user_id(plone, Request(**forged)) is None
    anonymous = dict(TASK, **{"txzserver.task.runas": ""})
    assert auth.task_user_id(plone, Request(**anonymous)) is None
    any_folder = dict(TASK, **{"txzserver.task.userfolder": ""})
    assert auth.task_user_id(root, Request(**any_folder)) == "jane"
    assert auth.task_user_id(root, None) is None


def test_the_root_user_folder_authenticates_the_task_user_without_password():
    from AccessControl.userfolder import BasicUserFolder
    from OFS.userfolder import UserFolder
    auth.apply()
    auth.apply()  # idempotent
    assert BasicUserFolder.authenticate is auth._authenticate
    folder = UserFolder()
    folder._doAddUser("jane", "pw-Secret-1", ["Manager"], [])
    root_task = dict(TASK, **{"txzserver.task.userfolder": "acl_users"})  # not in a root here
    assert folder.authenticate(None, None, Request(**root_task)).getId() == "jane"
    assert folder.authenticate(None, None, Request(**TASK)) is None  # another folder's user
    assert folder.authenticate("jane", "wrong", Request()) is None
    assert folder.authenticate("jane", "pw-Secret-1", Request()).getId() == "jane"
