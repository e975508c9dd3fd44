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
    resumes it once drained; ``stopProducing`` means the client is gone. ``backlog`` and
    ``backlog_bytes`` count what a caller wrote while paused (``wrote_while_paused``), and
    ``paused_at`` (on ``clock``) says since when; all reset on resume. Reactor thread only.
    """

    def __init__(self, clock=None):
        self.paused = False
        self.stopped = False
        self.backlog = 0
        self.backlog_bytes = 0
        self.paused_at = None
        self._clock = clock
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

    def wrote_while_paused(self, size=0):
        """Count a write of ``size`` bytes made while paused; return how many since the resume."""
        if self.paused:
            self.backlog += 1
            self.backlog_bytes += size
        return self.backlog

    def paused_for(self):
        """Seconds since the transport paused us (0 when not paused or without a clock)."""
        if not self.paused or self.paused_at is None:
            return 0.0
        return self._clock() - self.paused_at

    # IPushProducer

    def pauseProducing(self):
        if not self.paused and self._clock is not None:
            self.paused_at = self._clock()
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.backlog = 0
        self.backlog_bytes = 0
        self.paused_at = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self):
        self.stopped = True
        self.paused = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(ClientGone())


class StallTimer:
    """Calls ``on_stall()`` once ``seconds`` pass without ``progress()``: a response whose
    client takes nothing (Twisted suspends the HTTP/1.1 idle timeout while a response is
    sent, so without this a client that stops reading holds its connection for ever).
    ``clock`` has ``callLater`` (the reactor). Reactor thread only.
    """

    def __init__(self, clock, seconds, on_stall):
        self._call = clock.callLater(seconds, self._fire)
        self.seconds = seconds
        self._on_stall = on_stall

    def progress(self):
        """Bytes went out: the wait starts again."""
        if self._call is not None:
            self._call.reset(self.seconds)

    def stop(self):
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None

    def _fire(self):
        self._call = None
        self._on_stall()
