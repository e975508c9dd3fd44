"""`txzserver broker`: the XSUB/XPUB forwarder between instances.

Instances connect their PUB sockets to the frontend and their SUB sockets to the backend.
A steerable proxy runs in a thread; SIGTERM/SIGINT send it TERMINATE, so it stops cleanly
(and promptly: docker stop does not wait 10 s).
"""

import logging
import os
import signal
import threading

log = logging.getLogger("txzserver.broker")


def _prepare_ipc(endpoint):
    if endpoint.startswith("ipc://"):
        directory = os.path.dirname(endpoint[len("ipc://"):])
        if directory:
            os.makedirs(directory, exist_ok=True)


def run_broker(frontend, backend, ready=None, stop=None):
    """Forward until a signal (or ``stop`` is set); returns 0. ``ready`` is set when bound."""
    import zmq
    ctx = zmq.Context.instance()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    control = ctx.socket(zmq.PAIR)
    control_endpoint = f"inproc://txzserver-broker-control-{id(control)}"
    control.bind(control_endpoint)
    for endpoint in (frontend, backend):
        _prepare_ipc(endpoint)
    xsub.bind(frontend)
    xpub.bind(backend)
    for endpoint in (frontend, backend):
        if endpoint.startswith("ipc://"):
            os.chmod(endpoint[len("ipc://"):], 0o660)
    log.info("txzserver broker: publishers connect to %s, subscribers to %s", frontend, backend)

    def proxy():
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ContextTerminated:
            pass

    thread = threading.Thread(target=proxy, name="broker-proxy", daemon=True)
    thread.start()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if ready is not None:
        ready.set()
    while not stop.wait(0.5):
        pass
    log.info("txzserver broker: stopping")
    steer = ctx.socket(zmq.PAIR)
    steer.connect(control_endpoint)
    steer.send(b"TERMINATE")
    thread.join(5)
    for sock in (steer, control, xsub, xpub):
        sock.close(linger=0)
    log.info("txzserver broker: stopped")
    return 0
