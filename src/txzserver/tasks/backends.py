"""Where committed tasks go: this process's runner (``local``), the broker (``zmq``) or a
NATS JetStream work queue (``nats``, durable: tasks/natsqueue.py).

``local``: ``submit`` hands the tasks to the queue's runner on the reactor. ``zmq``: ``submit``
PUSHes them to the broker's task frontend; every instance PULLs from the broker's task backend,
which deals them round-robin to the instances that have room, so any instance may run a task and
each task reaches one instance. An instance reads from its PULL socket only while its runner has
room (the rest stays with the broker or in transit). Neither of these two is durable: a task that
is queued in memory or in the broker when a process stops is lost (docs/tasks.md).
"""

import zmq
from twisted.logger import Logger
from zope.interface import implementer

from ..bus.security import ClientSecurity
from ..bus.zmqreader import ZmqReader
from ..bus.zmqreader import context as zmq_context
from . import ledger
from .interfaces import ITaskQueues
from .natsqueue import NatsBackend
from .runner import TaskRunner
from .task import Task

log = Logger()


class LocalBackend:
    """Tasks stay in this process."""

    def __init__(self, reactor, runner):
        self.reactor = reactor
        self.runner = runner

    def submit(self, tasks):
        """Any thread."""
        self.reactor.callFromThread(self.runner.enqueue_all, list(tasks))

    def start(self):
        self.runner.start()

    def close(self):
        pass


class ZmqBackend(ZmqReader):
    """PUSH to the broker's task frontend, PULL from its task backend.

    The PULL socket's descriptor is edge-triggered (as the event bus's SUB): it is drained as
    far as the runner has room on each wake-up, and read again whenever a slot frees up.
    Reading, locking and closing are ``ZmqReader``'s, shared with the event bus.
    """

    log_prefix = "txzserver-tasks"

    def __init__(self, reactor, runner, push_endpoint, pull_endpoint, context=None, security=None):
        self.runner = runner
        runner.on_room = self.doRead
        ctx = context or zmq_context()
        security = security or ClientSecurity()
        self.push = security.socket(ctx, zmq.PUSH, push_endpoint)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.push.connect(push_endpoint)
        # Only as many tasks as it runs at once: the rest wait where any instance may take them.
        self.pull = security.socket(ctx, zmq.PULL, pull_endpoint,
                                    receive_hwm=max(1, runner.settings.concurrency))
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.connect(pull_endpoint)
        super().__init__(reactor, reading=self.pull, sockets=(self.push, self.pull))
        self.sent = self.received = 0

    def submit(self, tasks):
        """Any thread: never blocks (a full queue loses the task, in the dead-letter log)."""
        with self._lock:
            if self._closed:
                return
            for task in tasks:
                try:
                    self.push.send(task.to_wire(), zmq.NOBLOCK)
                    self.sent += 1
                except zmq.Again:
                    self.runner.give_up(task, 0, "the broker's task queue is full")

    def start(self):
        self.runner.start()
        self.start_reading()

    # ZmqReader (reactor thread)

    def more(self):
        return super().more() and self.runner.has_room()

    def receive(self, data):
        self.received += 1
        try:
            task = Task.from_wire(data)
        except (ValueError, TypeError, RecursionError) as exc:
            self.refuse("a task from the broker", exc)
            return
        self.runner.enqueue(task)


@implementer(ITaskQueues)
class TaskQueues:
    """Every configured queue of this process: the ITaskQueues utility ``add()`` finds."""

    def __init__(self, backends):
        self.backends = dict(backends)

    @classmethod
    def build(cls, reactor, pool, queue_settings, context=None, security=None, bus=None,
              name="txzserver"):
        """One runner and backend per ``TaskQueueSettings``; zmq backends connect with
        ``security`` (the <event-bus>'s ClientSecurity: the same broker), nats backends to the
        servers of ``bus`` (the <event-bus>'s settings, backend nats) as ``name``."""
        backends = {}
        for settings in queue_settings:
            runner = TaskRunner(reactor, pool, settings)
            if settings.backend == "nats":
                ledger.install()
                backends[settings.name] = NatsBackend(reactor, runner, bus, name=name)
            elif settings.backend == "zmq":
                backends[settings.name] = ZmqBackend(reactor, runner, settings.push, settings.pull,
                                                     context=context, security=security)
            else:
                backends[settings.name] = LocalBackend(reactor, runner)
        return cls(backends)

    def names(self):
        return tuple(self.backends)

    def task_user(self, name):
        return self.backends[name].runner.settings.task_user

    def runner(self, name):
        return self.backends[name].runner

    def submit(self, tasks):
        by_queue = {}
        for task in tasks:
            by_queue.setdefault(task.queue, []).append(task)
        for name, group in by_queue.items():
            backend = self.backends.get(name)
            if backend is None:
                log.error("no task queue {name}: {count} task(s) dropped", name=name, count=len(group))
                continue
            backend.submit(group)

    def set_app(self, app):
        for backend in self.backends.values():
            backend.runner.app = app

    def start(self):
        """Reactor thread, once the app is set."""
        for backend in self.backends.values():
            backend.start()

    def stop(self):
        for backend in self.backends.values():
            backend.runner.stop()

    def close(self):
        for backend in self.backends.values():
            backend.close()
