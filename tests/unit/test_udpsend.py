"""Sending QUIC datagrams: runs for one segmented send, and the sender's fallbacks, with a
recording socket (no network)."""

import errno
import socket
import struct

import pytest

from txzserver.server.udpsend import (MAX_SEGMENTS, UDP_SEGMENT, DatagramSender, runs,
                                     widen_buffers)

A = ("127.0.0.1", 1000)
B = ("127.0.0.1", 2000)


def grams(*sizes, addr=A):
    return [(bytes([n % 256]) * size, addr) for n, size in enumerate(sizes)]


def shape(datagrams):
    return [(addr, size, [len(d) for d in run]) for addr, size, run in runs(datagrams)]


def test_same_sized_datagrams_make_one_run_with_a_shorter_last():
    assert shape(grams(1200, 1200, 1200, 700)) == [(A, 1200, [1200, 1200, 1200, 700])]


def test_a_shorter_datagram_ends_its_run():
    assert shape(grams(1200, 700, 1200, 1200)) == [(A, 1200, [1200, 700]),
                                                   (A, 1200, [1200, 1200])]


def test_a_longer_datagram_starts_a_new_run():
    assert shape(grams(60, 1200, 1200)) == [(A, 60, [60]), (A, 1200, [1200, 1200])]


def test_another_address_starts_a_new_run():
    datagrams = grams(1200, 1200) + grams(1200, addr=B) + grams(1200)
    assert shape(datagrams) == [(A, 1200, [1200, 1200]), (B, 1200, [1200]), (A, 1200, [1200])]


def test_runs_keep_to_the_kernels_limits():
    many = shape(grams(*[100] * (MAX_SEGMENTS + 3)))
    assert [len(run) for _, _, run in many] == [MAX_SEGMENTS, 3]
    big = shape(grams(*[1500] * 50))  # 43 fill 64500 of the 65507 bytes one send may take
    assert [len(run) for _, _, run in big] == [43, 7]


def test_runs_keep_every_datagram_in_order():
    datagrams = grams(1200, 1200, 50, 1200, 1200, 1200, addr=A) + grams(900, 900, addr=B)
    flat = [(d, addr) for addr, _, run in runs(datagrams) for d in run]
    assert flat == datagrams


class RecordingSocket:
    family = socket.AF_INET

    def __init__(self, error=None):
        self.sent = []
        self.error = error

    def sendmsg(self, buffers, ancillary, flags, addr):
        if self.error is not None:
            raise OSError(self.error, "refused")
        [(level, option, data)] = ancillary
        assert (level, option) == (socket.SOL_UDP, UDP_SEGMENT)
        self.sent.append((struct.unpack("=H", data)[0], [len(b) for b in buffers], addr))


class RecordingPort:
    def __init__(self, sock=None, error=None):
        if sock is not None:
            self.socket = sock
        self.written = []
        self.error = error

    def write(self, data, addr):
        if self.error is not None:
            raise OSError(self.error, "full")
        self.written.append((len(data), addr))


def test_a_run_goes_in_one_segmented_send_and_a_lone_datagram_by_write():
    sock = RecordingSocket()
    port = RecordingPort(sock)
    DatagramSender(port).send(grams(1200, 1200, 1200, 300) + grams(80, addr=B))
    assert sock.sent == [(1200, [1200, 1200, 1200, 300], A)]
    assert port.written == [(80, B)]


def test_without_a_socket_every_datagram_is_written():
    port = RecordingPort()
    DatagramSender(port).send(grams(1200, 1200))
    assert port.written == [(1200, A), (1200, A)]


@pytest.mark.parametrize("code", [errno.EIO, errno.EINVAL, errno.ENOPROTOOPT])
def test_a_kernel_that_cannot_segment_gets_one_datagram_a_call_from_then_on(code):
    sock = RecordingSocket(error=code)
    port = RecordingPort(sock)
    sender = DatagramSender(port)
    sender.send(grams(1200, 1200))
    assert not sender.segmenting
    sender.send(grams(1200, 1200))
    assert port.written == [(1200, A)] * 4


@pytest.mark.parametrize("code", [errno.EAGAIN, errno.ENOBUFS])
def test_a_full_buffer_drops_the_datagrams_for_quic_to_send_again(code):
    sender = DatagramSender(RecordingPort(RecordingSocket(error=code), error=code))
    sender.send(grams(1200, 1200, 1200) + grams(50, addr=B))
    assert sender.dropped == 4
    assert sender.segmenting


def test_other_errors_are_raised():
    sender = DatagramSender(RecordingPort(RecordingSocket(error=errno.EBADF)))
    with pytest.raises(OSError):
        sender.send(grams(1200, 1200))


class BufferSocket:
    def __init__(self, default=212992, cap=4 * 1024 * 1024):
        self.values = {socket.SO_RCVBUF: default, socket.SO_SNDBUF: default}
        self.cap = cap

    def getsockopt(self, level, option):
        return self.values[option]

    def setsockopt(self, level, option, value):
        self.values[option] = 2 * min(value, self.cap)  # as Linux: capped, then doubled


def test_socket_buffers_are_widened_up_to_what_the_system_allows():
    assert widen_buffers(BufferSocket(), 4 * 1024 * 1024) == (8 * 1024 * 1024,) * 2
    assert widen_buffers(BufferSocket(cap=1024 * 1024), 4 * 1024 * 1024) == (2 * 1024 * 1024,) * 2


def test_larger_socket_buffers_are_kept():
    assert widen_buffers(BufferSocket(default=16 * 1024 * 1024), 4 * 1024 * 1024) == (
        16 * 1024 * 1024,) * 2
