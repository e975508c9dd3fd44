"""The seam between the Zope add-on (which makes events) and the server (which delivers them)."""

from zope.interface import Attribute, Interface


class IEventPublisher(Interface):
    """Registered as a global utility by the server at start-up.

    The Zope add-on looks it up with ``queryUtility(IEventPublisher)`` after a transaction
    committed and calls ``publish`` only; when none is registered (a script, a test without
    server) events are dropped. The server (app.py) starts and closes it, reads its counters
    for the metrics and its links for the readiness probe: every publisher provides all of it,
    so the server needs no knowledge of which one it holds (one without a bus counts zeros).
    """

    sent = Attribute("Messages published so far (the last sequence number used).")
    received = Attribute("Messages received from the bus (heartbeats not counted).")
    dropped = Attribute("Messages not published: the bus's send queue was full.")
    unsafe = Attribute("Events received and dropped: their url was not http(s).")
    invalid = Attribute("Messages received and dropped: not of the bus's schema.")
    lag = Attribute("Seconds the latest of this instance's own events took through the bus"
                    " and back, or None (none came back yet).")

    def publish(events):
        """Send a sequence of ``txzserver.bus.Event`` (or ``PrincipalChange``) to every
        instance, in order.

        May be called from any thread; must not block on the network.
        """

    def start():
        """Begin sending and receiving (reactor thread, once the reactor runs)."""

    def close():
        """Stop: let what is queued go out if it can, release the connections (once; after
        this ``publish`` drops what it is given)."""

    def links_up():
        """{the bus's address: connected} for the readiness probe (reactor thread); empty
        when nothing is watched."""
