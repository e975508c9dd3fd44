"""Choose and install the Twisted reactor before anything imports twisted.internet.reactor;
make SIGINT a stop signal whatever the process inherited."""

import math
import os
import signal
import socket
import sys
import time

from twisted.internet import error, tcp
from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.internet.posixbase import PosixReactorBase
from twisted.logger import Logger

from .errors import peer_of

log = Logger()

#: Twisted's asyncio reactor internals ``UvloopReactor`` relies on (checked by
#: tests/unit/test_reactor.py).
PRIVATE_TWISTED_NAMES = ("_readOrWrite", "_readers", "_writers", "_disconnectSelectable",
                         "_asyncioEventloop", "_reschedule", "_onTimer", "_timerHandle",
                         "_scheduledAt")
#: uvloop's timers count whole milliseconds.
UVLOOP_TICK = 0.001


def install_reactor(name="auto"):
    """Install the reactor named in zope.conf; return the name of what runs.

    "auto" prefers uvloop through Twisted's asyncioreactor and falls back to Twisted's
    default (epoll on Linux). "uvloop" fails clearly when uvloop cannot be imported.
    """
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor
        return type(reactor).__name__
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise RuntimeError("reactor uvloop was configured but uvloop cannot be imported")
        else:
            return _install_asyncio(UvloopReactor, uvloop.new_event_loop(), "uvloop")
    if name == "asyncio":
        import asyncio
        return _install_asyncio(AsyncioSelectorReactor, asyncio.new_event_loop(), "asyncio")
    from twisted.internet import default
    default.install()
    from twisted.internet import reactor
    return type(reactor).__name__


def _install_asyncio(reactor_class, loop, label):
    import asyncio
    from twisted.internet.main import installReactor
    asyncio.set_event_loop(loop)
    installReactor(reactor_class(loop))
    return label


class UvloopReactor(AsyncioSelectorReactor):
    """Twisted's asyncio reactor on a uvloop loop, told of the sockets uvloop stops watching.

    When the kernel flags a socket with an error (the peer reset the connection: EPOLLERR),
    libuv reports the socket's watcher as failed; uvloop then runs its reader and writer
    callbacks once, closes the watcher, and keeps the closed watcher as the descriptor's.
    Twisted is not told. If that one read returned bytes that came before the reset (a
    request sent and reset before this reactor read it: HAProxy aborting a request it had
    just forwarded, its client gone), Twisted never learns of the reset: nothing watches the
    socket any more, the request is published for nobody, the connection keeps its slot for
    good, and the first write of the response raises ``RuntimeError: unable to perform
    operation on <UVPoll closed=True>`` into the code writing it.

    Here a read that leaves its socket with a pending error disconnects it, as Twisted's
    next read would have (one getsockopt per read event, about 0.5 µs); and a descriptor
    whose watcher uvloop closed anyway gets a new one instead of the RuntimeError (the
    kernel reports the error to the new watcher, and Twisted disconnects as usual).

    And Twisted's timed calls wait on uvloop's timer rounded up to whole milliseconds (see
    ``uvloop_delay``). Reactor thread only.
    """

    def _reschedule(self):
        """Twisted's (one loop timer for the earliest DelayedCall), never due early."""
        timeout = self.timeout()
        if timeout is None:
            return
        if self._timerHandle is not None:
            self._timerHandle.cancel()
        now, delay = self._loop_delay(timeout)
        self._scheduledAt = now + delay
        self._timerHandle = self._asyncioEventloop.call_later(delay, self._onTimer)

    def callLater(self, delay, callable, *args, **kwargs):
        call = PosixReactorBase.callLater(self, delay, callable, *args, **kwargs)
        now, delay = self._loop_delay(self.timeout())
        if self._scheduledAt is None or now + delay < self._scheduledAt:
            self._reschedule()
        return call

    def _loop_delay(self, timeout):
        """(uvloop's clock now, the delay to give it) for a call due in ``timeout`` seconds."""
        now = self._asyncioEventloop.time()
        return now, uvloop_delay(timeout, time.monotonic() - now)

    def _readOrWrite(self, selectable, read):
        super()._readOrWrite(selectable, read)
        if read and selectable in self._readers and isinstance(selectable, tcp.Connection):
            code = pending_socket_error(selectable.socket)
            if code:
                log.debug("connection from {peer} reset: {error}", peer=peer_of(selectable),
                          error=os.strerror(code))
                self._disconnectSelectable(selectable, error.ConnectionLost(), True)

    def addReader(self, reader):
        self._watch(super().addReader, reader)

    def addWriter(self, writer):
        self._watch(super().addWriter, writer)

    def _watch(self, add, selectable):
        """``add(selectable)`` (the base reactor's addReader or addWriter), once more with a
        new watcher when uvloop closed the descriptor's."""
        try:
            add(selectable)
        except RuntimeError:
            self._renew_watcher(selectable)
            add(selectable)

    def _renew_watcher(self, selectable):
        """Drop the closed watcher uvloop keeps for ``selectable``'s descriptor (removing the
        descriptor's reader and writer drops it), then register again what Twisted believes
        is registered on it."""
        fd = selectable.fileno()
        log.debug("a new uvloop watcher for descriptor {fd} (its last was closed)", fd=fd)
        reading = self._readers.pop(selectable, None) is not None
        writing = self._writers.pop(selectable, None) is not None
        self._asyncioEventloop.remove_reader(fd)
        self._asyncioEventloop.remove_writer(fd)
        if reading:
            super().addReader(selectable)
        if writing:
            super().addWriter(selectable)


def uvloop_delay(timeout, behind):
    """The delay to give uvloop for a call due in ``timeout`` seconds: none for a call due
    now, else whole milliseconds, rounded up, counted from uvloop's clock, which is
    ``behind`` seconds (under a millisecond) behind the real one.

    uvloop rounds a delay to the nearest millisecond (under half of one: at once) from a
    clock that counts whole milliseconds, so a call due in 0.3 ms fired at once, was not due
    yet, and was scheduled again: the reactor spun until it was due, about a hundred turns
    per call and each one taking the GIL from the publisher threads (HTTP/3's pacing and loss
    timers are often under a millisecond), and any other call fired up to half a millisecond
    early and spun as long. Rounded up, a call fires about a millisecond late at most (the
    loop's wait is in whole milliseconds too), once, and finds itself due.
    """
    if timeout <= 0:
        return 0.0
    behind = min(max(behind, 0.0), UVLOOP_TICK)
    return math.ceil(round((timeout + behind) / UVLOOP_TICK, 6)) * UVLOOP_TICK


def pending_socket_error(sock):
    """The error code the kernel holds for ``sock`` (cleared by asking), 0 for none."""
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError:
        return 0


def restore_interrupt_signal():
    """Make SIGINT stop the server gracefully even when it was ignored on start; True if so.

    A process started in the background by a non-interactive shell (a script's
    ``txzserver serve ... &``, a test run launched that way) inherits SIGINT ignored, and
    Twisted installs its graceful-shutdown handler only over Python's default one: the
    server would go on serving through every SIGINT. SIGTERM and SIGINT are the documented
    stop signals, so Python's default is put back before the reactor runs. Main thread only.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return True
