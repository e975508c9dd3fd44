"""Send a file region to a plain TCP socket with ``os.sendfile``: no byte passes through Python.

Used for HTTP/1.1 responses over cleartext TCP whose body is a regular file (Plone blobs,
spooled responses). The producer borrows the transport from the HTTP/1.1 channel while it
sends, registered as the transport's pull producer: Twisted's transport calls
``resumeProducing`` only once its own buffer (the response head) is on the wire, so the
file's bytes never overtake the head. Each call sends what the socket takes now (at most
TURN bytes), then asks the reactor to call again when the socket is writable
(``transport.startWriting``: its ``doWrite`` finds the buffer empty and resumes the pull
producer). Nothing ever blocks on the socket, a client that reads slowly costs the
socket's kernel buffer and no more, and one that reads nothing for idle-timeout seconds
is cut off (Twisted suspends the HTTP/1.1 idle timeout while a response is sent).
"""

import errno
import os

from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger
from zope.interface import implementer

from ..transfer import StallTimer
from .errors import peer_of

log = Logger()

#: Bytes one turn of the reactor sends on one connection at most: other connections get
#: their turn in between, and a fast local client still gets large sendfile calls.
TURN = 4 * 1024 * 1024

#: sendfile errors that mean the client is gone (not a fault of ours or of the file).
CLIENT_GONE = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ECONNABORTED,
                         errno.ESHUTDOWN, errno.ETIMEDOUT})


@implementer(IPullProducer)
class SendfileProducer:
    """Send ``length`` bytes of file descriptor ``fd`` from ``offset`` to ``transport``.

    ``transport`` is a plain TCP transport with no other producer registered (see
    ``HTTP1Channel.lend_plain_transport``); ``clock`` has ``callLater`` (the reactor);
    ``idle_timeout`` seconds without a byte taken by the client abort the connection.
    ``done(producer, error)`` is called once, when the region is sent (error False), the
    client went away (``stopped``), the file ended early or sendfile failed (error True).
    The attributes ``sent``, ``remaining`` and ``stopped`` say which. Reactor thread only.
    """

    def __init__(self, transport, fd, offset, length, clock, idle_timeout, done):
        self.transport = transport
        self.fd = fd
        self.offset = offset
        self.remaining = length
        self.sent = 0
        self.stopped = False
        self.clock = clock
        self.idle_timeout = idle_timeout
        self._done = done
        self._finished = False
        self._registering = False
        self._timer = None

    def start(self):
        """Register with the transport; sending starts once its buffer is empty."""
        self._timer = StallTimer(self.clock, self.idle_timeout, self._timed_out)
        self._registering = True
        try:
            self.transport.registerProducer(self, False)  # calls resumeProducing at once
        finally:
            self._registering = False

    # IPullProducer

    def resumeProducing(self):
        if self._finished:
            return
        if self._registering:
            # Called by registerProducer: the head may still be in the transport's buffer.
            self._wait_for_socket()
            return
        try:
            sent = self._send_turn()
        except OSError as exc:
            if exc.errno in CLIENT_GONE:
                self._client_gone(exc)
            else:
                log.error("os.sendfile failed after {sent} bytes: {error}", sent=self.sent, error=exc)
                self._finish(error=True)
            return
        if sent is None:  # the file ended before the length announced
            self._finish(error=True)
            return
        if sent and self._timer is not None:
            self._timer.progress()
        if self.remaining == 0:
            self._finish(error=False)
        else:
            self._wait_for_socket()

    def stopProducing(self):
        """The transport lost its connection: not an error of ours."""
        self.stopped = True
        self._finish(error=True)

    # Helpers

    def _send_turn(self):
        """sendfile until the socket is full, the region sent or TURN bytes went out; the
        bytes sent, or None when the file had no more bytes to give."""
        socket_fd = self.transport.fileno()
        turn = 0
        while self.remaining > 0 and turn < TURN:
            try:
                n = os.sendfile(socket_fd, self.fd, self.offset, min(self.remaining, TURN - turn))
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if n == 0:
                return None
            self.offset += n
            self.remaining -= n
            self.sent += n
            turn += n
        return turn

    def _wait_for_socket(self):
        """Have the transport call resumeProducing when the socket can take more."""
        self.transport.startWriting()

    def _client_gone(self, exc):
        """sendfile said the connection is reset or closed. The kernel tells that once, and
        it told us, not the transport: the transport's own next send or read would learn
        it, but it has nothing to send, and it may not be reading (a pipelined request
        waits): it would keep the dead socket, and the connection its slot, for good."""
        log.debug("client {peer} went away after {sent} bytes of its file: {error}",
                  peer=peer_of(self.transport), sent=self.sent, error=exc)
        self.stopped = True
        self.transport.abortConnection()
        self._finish(error=True)

    def _timed_out(self):
        log.info("closing the connection of {peer}: it took no byte of its response for"
                 " {timeout:g} seconds (idle-timeout), {left} bytes unsent",
                 peer=peer_of(self.transport), timeout=self.idle_timeout, left=self.remaining)
        self.transport.abortConnection()

    def _finish(self, error):
        if self._finished:
            return
        self._finished = True
        if self._timer is not None:
            self._timer.stop()
        if getattr(self.transport, "producer", None) is self:
            self.transport.unregisterProducer()
        self._done(self, error)

