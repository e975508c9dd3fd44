"""The event bus: content events from Zope (after commit) to every instance's WebSockets."""

from .message import Event, EVENT_TYPES, PrincipalChange, UnsafeURL
from .interfaces import IEventPublisher

#: Where `txzserver broker` binds and `<event-bus>` connects unless told otherwise: a shared
#: directory (a volume shared by the containers of one host).
DEFAULT_PUBLISH = "ipc:///tmp/txzserver-bus/publish.sock"
DEFAULT_SUBSCRIBE = "ipc:///tmp/txzserver-bus/subscribe.sock"
#: The broker's task stream (PULL from instances, PUSH to instances): `<task-queue>` zmq defaults.
DEFAULT_TASKS_PUSH = "ipc:///tmp/txzserver-bus/tasks-in.sock"
DEFAULT_TASKS_PULL = "ipc:///tmp/txzserver-bus/tasks-out.sock"

__all__ = ["DEFAULT_PUBLISH", "DEFAULT_SUBSCRIBE", "DEFAULT_TASKS_PUSH", "DEFAULT_TASKS_PULL", "Event",
           "EVENT_TYPES", "IEventPublisher", "PrincipalChange", "UnsafeURL"]
