"""Graceful shutdown: stop accepting, let requests in flight finish (bounded), then stop."""

from twisted.internet import defer, task
from twisted.logger import Logger

log = Logger()


class InFlight:
    """Counts requests from arrival until their response is finished (reactor thread).

    ``draining`` turns true when the shutdown drain starts: the readiness probe fails from
    then on (server/health.py), so a load balancer stops sending traffic here.
    """

    def __init__(self):
        self.count = 0
        self.draining = False
        self._idle = []

    def started(self):
        self.count += 1

    def ended(self, _=None):
        self.count -= 1
        if self.count == 0:
            waiters, self._idle = self._idle, []
            for d in waiters:
                d.callback(None)

    def wait_idle(self):
        if self.count == 0:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        return d


def drain(reactor, ports, tracker, timeout, delay=0.0):
    """Reactor 'before shutdown' trigger: returns a Deferred the reactor waits for.

    Readiness fails at once; the listeners keep accepting for ``delay`` seconds (load
    balancers and Kubernetes endpoints learn of the readiness change only at their next
    probe or watch event, and would meanwhile send new connections to a closed port), then
    close; requests in flight get ``timeout`` seconds from there.
    """
    tracker.draining = True
    if delay > 0:
        log.info("shutting down: serving {delay}s more while readiness fails (shutdown-delay)",
                 delay=delay)
        waited = task.deferLater(reactor, delay, lambda: None)
    else:
        waited = defer.succeed(None)
    # The timeout cancels ``d``: a plain Deferred fed by the chain, because cancelling the
    # (already fired) DeferredList of gatherResults would not end the wait for requests.
    d = defer.Deferred()
    waited.addCallback(lambda _: _close(ports, tracker)).addCallback(
        lambda _: tracker.wait_idle()).chainDeferred(d)
    d.addTimeout(delay + timeout, reactor, onTimeoutCancel=lambda *a: log.warn(
        "shutdown: {count} request(s) still in flight after {t}s, stopping anyway",
        count=tracker.count, t=timeout))
    d.addErrback(lambda f: log.failure("error during graceful shutdown", f))
    return d


def _close(ports, tracker):
    log.info("shutting down: closing {n} listener(s), {count} request(s) in flight",
             n=len(ports), count=tracker.count)
    return defer.gatherResults([defer.maybeDeferred(port.stopListening).addErrback(
        lambda f: log.failure("closing a listener failed", f)) for port in ports])
