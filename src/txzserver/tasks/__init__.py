"""Background tasks: requests queued after commit and published later inside the server.

``add(path, ...)`` (collective.taskqueue's ``taskqueue.add``) queues; ``is_task(request)`` tells
a view it runs as a task. The server builds the queues from ``<task-queue NAME>`` sections
(``TaskQueues.build``) and registers them (``register_task_queues``).
"""

from zope.component import provideUtility

from .enqueue import TaskQueueError, add
from .interfaces import ITaskQueues
from .task import TASK_HEADER, Task, is_task, task_attempt


def register_task_queues(queues):
    """Make ``queues`` the ITaskQueues that ``add()`` finds (the server, at start-up)."""
    provideUtility(queues, ITaskQueues)


__all__ = ["add", "is_task", "task_attempt", "ITaskQueues", "Task", "TaskQueueError", "TASK_HEADER",
           "register_task_queues"]
