"""Choose and install the Twisted reactor before anything imports twisted.internet.reactor."""

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
