"""SIGINT stops the server whatever disposition the process inherited (server/reactor.py)."""

import signal

import pytest

from txzserver.server.reactor import restore_interrupt_signal


@pytest.fixture
def sigint():
    """The test's SIGINT disposition, put back afterwards."""
    saved = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, saved)


def test_an_inherited_ignore_is_replaced_by_pythons_default(sigint):
    """A background job of a non-interactive shell starts with SIGINT ignored; Twisted
    installs its graceful stop only over Python's default handler, so it is put back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    assert restore_interrupt_signal() is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_default_handler_is_left_alone(sigint):
    signal.signal(signal.SIGINT, signal.default_int_handler)
    assert restore_interrupt_signal() is False
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_handler_of_someone_elses_is_left_alone(sigint):
    """E.g. a debugger's: Twisted leaves it too."""
    def handler(number, frame):
        pass
    signal.signal(signal.SIGINT, handler)
    assert restore_interrupt_signal() is False
    assert signal.getsignal(signal.SIGINT) is handler
