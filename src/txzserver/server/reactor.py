"""Choose and install the Twisted reactor before anything imports twisted.internet.reactor;
make SIGINT a stop signal whatever the process inherited."""

import signal
import sys


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
            return _install_asyncio(uvloop.new_event_loop(), "uvloop")
    if name == "asyncio":
        import asyncio
        return _install_asyncio(asyncio.new_event_loop(), "asyncio")
    from twisted.internet import default
    default.install()
    from twisted.internet import reactor
    return type(reactor).__name__


def _install_asyncio(loop, label):
    import asyncio
    from twisted.internet import asyncioreactor
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    return label


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
