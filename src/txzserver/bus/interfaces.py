"""The seam between the Zope add-on (which makes events) and the server (which delivers them)."""

from zope.interface import Interface


class IEventPublisher(Interface):
    """Registered as a global utility by the server at start-up.

    The Zope add-on looks it up with ``queryUtility(IEventPublisher)`` after a transaction
    committed; when none is registered (a script, a test without server) events are dropped.
    """

    def publish(events):
        """Send a sequence of ``txzserver.bus.Event`` (or ``PrincipalChange``) to every
        instance, in order.

        May be called from any thread; must not block on the network.
        """
