"""Sending a QUIC connection's datagrams: several in one system call where Linux allows it.

aioquic hands over a burst of datagrams per transmit (up to its pacing bucket, 16 or so of
1200 bytes). One ``sendto`` each cost 5-7 us of the reactor thread on loopback; with UDP
generic segmentation offload (``UDP_SEGMENT``, Linux 4.18+) one ``sendmsg`` carries a run of
same-sized datagrams that the kernel cuts apart: about 1.1 us a datagram (measured on the
2-core bench machine). Elsewhere, or when the kernel refuses it, every datagram is written
through the Twisted port as before. Reactor thread only.
"""

import errno
import socket
import struct

from twisted.logger import Logger

#: Linux's UDP_SEGMENT socket option (include/uapi/linux/udp.h); Python names it from 3.12
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
#: The kernel's most segments in one send (UDP_MAX_SEGMENTS).
MAX_SEGMENTS = 64
#: A UDP payload's largest size, which the whole of one segmented send must also fit.
MAX_SEND = 65507
#: Errors of a full socket buffer or device queue, or of a datagram larger than the interface
#: takes with the don't-fragment bit (a path MTU probe): the datagrams are dropped and QUIC's
#: loss recovery sends their frames again (Twisted's Port.write raised them to the caller).
DROPPED = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED,
                     errno.EMSGSIZE})
#: Errors that say the kernel or the path cannot segment: give up on it for this socket.
UNSUPPORTED = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP})

#: Bytes asked for the QUIC socket's receive and send buffers. Linux's default (212992) holds
#: some 200 small datagrams: with 8 HTTP/3 downloads the server's socket dropped 8,000-17,000
#: of its clients' datagrams (acknowledgements, window updates) in 20 s while the reactor was
#: busy. Linux caps the value at net.core.rmem_max / wmem_max.
SOCKET_BUFFER = 4 * 1024 * 1024

log = Logger()


def widen_buffers(sock, size=SOCKET_BUFFER):
    """Ask for ``size``-byte receive and send buffers on ``sock``; (receive, send) as the
    kernel reports them after (Linux doubles what it grants, for its bookkeeping)."""
    sizes = []
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            if sock.getsockopt(socket.SOL_SOCKET, option) < size:
                sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass  # the system's default stays
        sizes.append(sock.getsockopt(socket.SOL_SOCKET, option))
    return tuple(sizes)


def runs(datagrams):
    """Group ``(data, addr)`` pairs in order into runs one segmented send can carry: the
    same address, every datagram of the run's first size except a shorter last one, at
    most MAX_SEGMENTS and MAX_SEND bytes. Yields ``(addr, size, [data, ...])``."""
    addr = size = None
    run, total = [], 0
    for data, to in datagrams:
        length = len(data)
        if run and (to != addr or length > size or len(run) == MAX_SEGMENTS
                    or total + length > MAX_SEND or len(run[-1]) < size):
            yield addr, size, run
            run, total = [], 0
        if not run:
            addr, size = to, length
        run.append(data)
        total += length
    if run:
        yield addr, size, run


class DatagramSender:
    """Writes datagrams on a Twisted UDP port: with ``UDP_SEGMENT`` when the port's socket
    takes it (Linux), else one ``port.write`` each."""

    def __init__(self, port):
        self.port = port
        self.socket = getattr(port, "socket", None)  # Twisted's udp.Port keeps it there
        self.segmenting = (self.socket is not None and hasattr(self.socket, "sendmsg")
                           and self.socket.family in (socket.AF_INET, socket.AF_INET6))
        #: datagrams lost to a full buffer (QUIC sends their frames again)
        self.dropped = 0

    def send(self, datagrams):
        """Send ``datagrams``, (data, addr) pairs, in order."""
        if not self.segmenting:
            for data, addr in datagrams:
                self._write(data, addr)
            return
        for addr, size, run in runs(datagrams):
            if len(run) == 1:
                self._write(run[0], addr)
            elif not self._segmented(addr, size, run):
                for data in run:
                    self._write(data, addr)

    def _segmented(self, addr, size, run):
        """One sendmsg of ``run``; False when the kernel cannot segment (then never again)."""
        try:
            self.socket.sendmsg(run, [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))],
                                0, addr)
        except OSError as error:
            if error.errno in DROPPED:
                self.dropped += len(run)
                return True
            if error.errno not in UNSUPPORTED:
                raise
            log.info("UDP segmentation offload refused ({error}): sending one datagram per"
                     " call on this socket", error=error)
            self.segmenting = False
            return False
        return True

    def _write(self, data, addr):
        try:
            self.port.write(data, addr)
        except OSError as error:
            if error.errno not in DROPPED:
                raise
            self.dropped += 1
