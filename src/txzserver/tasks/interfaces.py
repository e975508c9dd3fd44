"""The seam between ``add()`` (in Zope's threads) and the queues the server runs."""

from zope.interface import Interface


class ITaskQueues(Interface):
    """Registered as a global utility by the server at start-up (``register_task_queues``)."""

    def names():
        """The configured queue names."""

    def task_user(name):
        """The user id every task of queue ``name`` runs as, or "" (the user who queued it)."""

    def submit(tasks):
        """Queue committed ``Task`` objects (any thread). A nats queue, called in a Zope thread,
        returns once NATS stored them or after its publish-wait; the others never wait."""
