"""`txzserver broker`: the XSUB/XPUB forwarder between instances, and the task stream.

Instances connect their PUB sockets to the frontend and their SUB sockets to the backend.
With ``tasks`` (frontend, backend) a second forwarder, PULL/PUSH, deals the tasks instances
PUSH to its frontend round-robin to the instances PULLing from its backend (each task to one).
Each steerable proxy runs in a thread; SIGTERM/SIGINT send it TERMINATE, so it stops cleanly
(and promptly: docker stop does not wait 10 s). Every socket is bound through a ``BrokerGuard``
(bus/security.py): CURVE and the allow-list on tcp, a private directory for ipc, size limits,
and the instances' high-water mark (``DEFAULT_HIGH_WATER_MARK``, 100,000 messages per socket
and peer; ``--high-water-mark``): at libzmq's default of 1,000 the XPUB socket dropped most of
a bulk commit's burst for a subscriber busy for a moment (tests/unit/test_broker.py).
"""

import logging
import secrets
import signal
import threading

from .security import BrokerGuard, secure_ipc_dir

log = logging.getLogger("txzserver.broker")


class _Forwarder:
    """One steerable zmq.proxy in a thread, between a bound frontend and backend socket."""

    def __init__(self, ctx, guard, kinds, frontend, backend, name):
        import zmq
        self.zmq = zmq
        self.ctx = ctx
        self.front, self.back = ctx.socket(kinds[0]), ctx.socket(kinds[1])
        self.control = ctx.socket(zmq.PAIR)
        # a name of its own: an id() is reused once a closed socket is collected, while the
        # context may still hold the old inproc name (it is released asynchronously)
        self.control_endpoint = f"inproc://txzserver-broker-control-{secrets.token_hex(8)}"
        self.control.bind(self.control_endpoint)
        guard.bind(self.front, frontend)
        guard.bind(self.back, backend)
        self.thread = threading.Thread(target=self._proxy, name=name, daemon=True)
        self.thread.start()

    def _proxy(self):
        try:
            self.zmq.proxy_steerable(self.front, self.back, None, self.control)
        except self.zmq.ContextTerminated:
            pass

    def stop(self):
        steer = self.ctx.socket(self.zmq.PAIR)
        steer.connect(self.control_endpoint)
        steer.send(b"TERMINATE")
        self.thread.join(5)
        for sock in (steer, self.control, self.front, self.back):
            sock.close(linger=0)


def run_broker(frontend, backend, ready=None, stop=None, tasks=None, guard=None):
    """Forward until a signal (or ``stop`` is set); returns 0. ``ready`` is set when bound
    (with the ``BrokerGuard`` in ``ready.guard``). ``tasks``: (frontend, backend) of the task
    stream, or None for events only; ``guard``: default, no CURVE (ipc only, or tests).
    Raises BusSecurityError (an unsafe ipc directory) before binding anything."""
    import zmq
    for endpoint in (frontend, backend, *(tasks or ())):
        secure_ipc_dir(endpoint)
    guard = guard or BrokerGuard(zmq.Context.instance())
    ctx = guard.ctx
    forwarders = [_Forwarder(ctx, guard, (zmq.XSUB, zmq.XPUB), frontend, backend, "broker-proxy")]
    log.info("txzserver broker: publishers connect to %s, subscribers to %s", frontend, backend)
    if tasks is not None:
        forwarders.append(_Forwarder(ctx, guard, (zmq.PULL, zmq.PUSH), tasks[0], tasks[1],
                                     "broker-tasks"))
        log.info("txzserver broker: tasks are pushed to %s, pulled from %s", *tasks)
    guard.start()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if ready is not None:
        ready.guard = guard
        ready.set()
    while not stop.wait(0.5):
        pass
    log.info("txzserver broker: stopping")
    for forwarder in forwarders:
        forwarder.stop()
    guard.stop()
    log.info("txzserver broker: stopped")
    return 0
