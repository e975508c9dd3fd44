"""What the protocol packages share about moving bodies: backpressure and closing.

Used by the HTTP publisher and streaming (server/) and the WebSocket protocol (websocket/).
A leaf module: it imports nothing from txzserver, so the import rules allow it everywhere.
"""

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()


def close_body(body, quietly=True):
    """Call ``body.close()`` if it has one (WSGI iterables, files, Zope stream iterators).

    ``quietly`` logs an error instead of raising it: for bodies closed after the response
    was already decided.
    """
    close = getattr(body, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        if not quietly:
            raise
        log.failure("closing a response body failed")


class ClientGone(Exception):
    """The client disconnected while we still had something to send."""


@implementer(IPushProducer)
class PauseObserver:
    """Registered with a transport as a streaming producer only to hear ``pauseProducing``.

    The transport pauses its producer when its write buffer passes the high-water mark and
    resumes it once drained; ``stopProducing`` means the client is gone. ``backlog`` counts
    the writes a caller made while paused (``wrote_while_paused``), reset on resume.
    Reactor thread only.
    """

    def __init__(self):
        self.paused = False
        self.stopped = False
        self.backlog = 0
        self._waiting = None

    def wait(self):
        """A Deferred firing when the transport is not paused (ClientGone once stopped)."""
        if self.stopped:
            return defer.fail(ClientGone())
        if not self.paused:
            return defer.succeed(None)
        if self._waiting is None:
            self._waiting = defer.Deferred()
        return self._waiting

    def wrote_while_paused(self):
        """Count a write made while paused; return how many since the last resume."""
        if self.paused:
            self.backlog += 1
        return self.backlog

    # IPushProducer

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.backlog = 0
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self):
        self.stopped = True
        self.paused = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(ClientGone())
