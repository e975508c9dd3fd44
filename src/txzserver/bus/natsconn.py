"""The NATS connection of a process: its options from the ``<event-bus>`` settings, and the one
asyncio loop (in a daemon thread) that runs nats-py beside the Twisted reactor.

nats-py is asyncio-only, and the reactor may not be asyncio's (``reactor default``) or may run
uvloop: a loop of our own in one thread works with every reactor. Code on the reactor side
hands coroutines over with ``NatsLoop.run`` and gets results back through
``reactor.callFromThread`` (``NatsLoop.to_reactor``); nothing blocks either side.
"""

import asyncio
import concurrent.futures
import ssl
import threading
from urllib.parse import urlsplit

from twisted.logger import Logger

log = Logger()

#: seconds between reconnection attempts to a NATS server (nats-py's default is 2)
RECONNECT_WAIT = 1


def shown(urls):
    """The server URLs as logs, errors and /healthz may show them: scheme, host and port, never
    the user:password a URL may carry (Kubernetes and compose put the password there)."""
    if isinstance(urls, str):
        urls = [urls]
    return ", ".join(_without_userinfo(url) for url in urls)


def _without_userinfo(url):
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def connect_options(bus, name=None):
    """Keyword arguments for ``nats.connect(**options)`` from an EventBusSettings (backend nats).

    Reconnects for ever (an instance outlives a NATS restart); TLS with the CA when one is
    configured or a URL is tls://; credentials or an nkey seed file when configured.
    """
    options = {
        "servers": list(bus.nats_servers),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT,
        "connect_timeout": 5,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
    }
    if name:
        options["name"] = name
    if bus.nats_credentials:
        options["user_credentials"] = bus.nats_credentials
    if bus.nats_nkey:
        options["nkeys_seed"] = bus.nats_nkey
    if bus.nats_tls_ca or any(url.startswith("tls://") for url in bus.nats_servers):
        options["tls"] = ssl.create_default_context(cafile=bus.nats_tls_ca or None)
    return options


class NatsLoop:
    """One asyncio event loop in a daemon thread, for the nats-py coroutines of this process.

    ``NatsLoop.instance()`` is the process's shared loop (the event bus and the task queue use
    the same one); ``run(coro)`` may be called from any thread and returns a
    concurrent.futures.Future; ``to_reactor`` hands a call to the reactor thread.
    """

    _shared = None
    _shared_lock = threading.Lock()

    def __init__(self, name="txzserver-nats"):
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    @classmethod
    def instance(cls):
        """The process's shared loop, started on first use (again after a ``stop``)."""
        with cls._shared_lock:
            if cls._shared is None or not cls._shared.running:
                cls._shared = cls()
            return cls._shared

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def running(self):
        return self.thread.is_alive() and not self.loop.is_closed()

    def run(self, coro) -> concurrent.futures.Future:
        """Any thread: schedule ``coro`` on the loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, function, *args):
        """Any thread: call ``function(*args)`` in the loop's thread."""
        self.loop.call_soon_threadsafe(function, *args)

    @staticmethod
    def to_reactor(reactor, function, *args):
        """Loop thread: hand ``function(*args)`` to the reactor thread."""
        reactor.callFromThread(function, *args)

    def stop(self, timeout=5):
        """Cancel what still runs on the loop, stop it and wait for its thread (not from it)."""
        if not self.running:
            return

        async def cancel_all():
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all()).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warn("NATS loop: tasks still running at stop")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
