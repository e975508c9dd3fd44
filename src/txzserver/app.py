"""The wiring: settings -> thread pool, sites, health and metrics listeners, WebSocket service,
event bus, task queues; Zope through zope/.

The only module (with cli.py and paste.py) that knows every package. Nothing here runs at
import: the reactor is installed by ``serve`` (or paste) before ``run`` imports it.
"""

import gc
import logging
import resource
import sys

from twisted.python import log as twisted_log
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from .bus.natsbus import NatsBus
from .bus.natsconn import shown
from .bus.publishers import LocalPublisher, ZmqBus
from .metrics import ServerMetrics
from .server.admission import Admission
from .server.connection import ConnectionCounter
from .server.environ import ProxyTrust
from .server.health import (
    READY, DatabaseCheck, Draining, Health, HealthSite, LinkCheck, PoolCanary, Shared, Started, watch,
)
from .server.h3listen import H3Endpoint, QuicPort, alt_svc, quic_configuration
from .server.listeners import endpoint_for, url_of
from .server.metrics import MetricsSite, read_server
from .server.publisher import ZopeResource
from .server.reactor import install_reactor, restore_interrupt_signal
from .server.shutdown import InFlight, drain
from .server.site import ZopeSite
from .server.spool import SpoolBudget
from .tasks import auth as task_auth
from .tasks import register_task_queues
from .tasks.backends import TaskQueues
from .websocket.fanout import Hub
from .websocket.service import NotificationService
from .zope import health as zope_health
from .zope import storagedown
from .zope.metrics import ZodbCollector
from .zope.startup import close_zope, configure_logging, register_event_publisher, start_zope

log = logging.getLogger("txzserver")


class BindError(Exception):
    """A configured socket could not be opened (port taken, bad address, bad certificate)."""


def build_sites(reactor, pool, app, settings, tracker, websocket=None, metrics=None):
    """One ZopeSite per configured listener (the WebSocket endpoint on each except webdav-source).

    With ``metrics`` (a ServerMetrics) the sites count their requests, and the state they
    share (connections, admission, the pool) is read at each scrape."""
    trust = ProxyTrust(settings.trusted_proxies)
    counter = ConnectionCounter(settings.max_connections)
    admission = Admission()
    spool = SpoolBudget(settings.max_spool_size)
    sites = []
    for listener in settings.listeners:
        resource_ = ZopeResource(reactor, pool, app, settings, trust,
                                 secure=listener.kind == "https", tracker=tracker,
                                 websocket=None if listener.kind == "webdav-source" else websocket)
        sites.append((listener, ZopeSite(resource_, settings, counter, h2c=listener.h2c,
                                         http2=listener.http2, reactor=reactor, metrics=metrics,
                                         spool=spool, admission=admission)))
    if metrics is not None:
        read_server(metrics.readings, pool, settings.threads, counter, tracker, admission)
    return sites


def make_event_publisher(reactor, hub, settings):
    """The IEventPublisher: over ZeroMQ or NATS when an <event-bus> is configured, else
    in-process."""
    if settings.event_bus is None:
        return LocalPublisher(reactor, hub)
    bus = settings.event_bus
    if bus.backend == "nats":
        log.info("txzserver event bus: NATS JetStream stream %s at %s", bus.stream,
                 shown(bus.nats_servers))
        return NatsBus(reactor, hub, bus, instance=settings.instance_name)
    log.info("txzserver event bus: publish to %s, subscribe from %s", bus.publish, bus.subscribe)
    return ZmqBus(reactor, hub, bus.publish, bus.subscribe, instance=settings.instance_name,
                  watch=settings.health is not None, security=bus.security(),
                  heartbeat_interval=bus.heartbeat_interval)


def build_health(reactor, pool, settings, tracker, publisher, site_id=None, probe=None,
                 disconnected=None):
    """The <health-server> site, the ``Started`` check to mark once Zope runs, and the
    shared dependencies ({name: Shared}: "database", "event-bus" with an <event-bus>).

    Readiness is this instance's own (started, not draining, pool not stuck); the shared
    dependencies only degrade it. ``probe`` and ``disconnected`` default to the ZODB's
    (txzserver.zope.health). The first database probe starts when the reactor runs, so the
    first readiness probe finds an answer; then they are watched every check-interval.
    """
    config = settings.health
    started = Started(site_id)
    canary = PoolCanary(reactor, pool, config.stuck_after)
    database = DatabaseCheck(reactor, probe or zope_health.make_probe(site_id),
                             disconnected or zope_health.disconnected,
                             interval=config.check_interval, timeout=config.check_timeout)
    shared = [Shared(database)]
    if settings.event_bus is not None:
        shared.append(Shared(LinkCheck("event-bus", publisher.links_up)))
    health = Health(startup=[started], live=[canary], ready=[started, Draining(tracker), canary],
                    shared=shared)
    reactor.callWhenRunning(database.check)
    watch(reactor, shared, config.check_interval)
    return HealthSite(health, reactor=reactor), started, {check.name: check for check in shared}


def guard_storage(app, settings, shared):
    """Zope's app behind storagedown's WriteGuard (writes 503 while the database is down,
    ZEO's wait cut to storage-wait); as is without a <health-server>."""
    if settings.health is None:
        return app
    database = shared["database"]

    def known():
        return {} if database.up else {"main": database.details.get("reason", "down")}

    return storagedown.guard(app, settings.health.storage_wait, known)


def build_metrics(reactor, metrics, settings, hub, publisher, zodb=None, shared=None, health=None):
    """The <metrics-server> site; registers the readings of the event bus, the WebSocket hub,
    the ZODB (``zodb``: a collector, default the databases Zope opened), the shared
    dependencies the health checks watch (``shared``: {name: Shared}, with <health-server>) and
    the last readiness answer (``health``: its ``Health``)."""
    readings = metrics.readings
    if health is not None:
        def ready():
            last = health.last(READY)
            return None if last is None else int(last)
        readings.gauge("txzserver_ready", "1 while the last readiness probe (/healthz/ready)"
                       " was answered 200, 0 while 503; absent before the first probe.", ready)
    if shared:
        readings.gauge("txzserver_dependency_up", "1 while a dependency every instance shares"
                       " (database, event-bus) answers, 0 while it is lost (the instance is"
                       " degraded, still ready).",
                       lambda: {(name, ): int(check.up) for name, check in shared.items()},
                       labels=("dependency",))
    readings.counter("txzserver_events_published", "Messages this instance published: to the"
                     " broker with <event-bus>, else to its own hub.", lambda: publisher.sent)
    if settings.event_bus is not None:
        readings.counter("txzserver_events_received", "Events received from the bus (every"
                         " instance's, this one's too).", lambda: publisher.received)
        readings.gauge("txzserver_bus_lag_seconds", "Seconds the latest of this instance's own"
                       " events took through the broker and back.", lambda: publisher.lag)

    def dropped():
        return {("duplicate",): hub.dropped, ("seq-jump",): hub.jumps,
                ("bus-full",): publisher.dropped, ("unsafe-url",): publisher.unsafe,
                ("invalid",): publisher.invalid}

    readings.counter("txzserver_events_dropped", "Events not delivered: the bus's send queue"
                     " was full (bus-full), already seen (duplicate), received with a url"
                     " that is not http(s) (unsafe-url), not of the bus's schema (invalid), or"
                     " numbered further than any publisher counts (seq-jump).", dropped,
                     labels=("reason",))
    readings.counter("txzserver_events_delivered", "Event messages sent to WebSocket"
                     " subscribers (one per subscriber that may see the event).",
                     lambda: hub.delivered)
    readings.counter("txzserver_events_gaps", "Gaps announced to the subscribers: events of"
                     " another instance lost on the bus.", lambda: hub.gaps)
    readings.counter("txzserver_bus_heartbeats", "Heartbeats heard from publisher runs (every"
                     " instance's, this one's too): each carries its run's last event number.",
                     lambda: hub.heartbeats)
    readings.counter("txzserver_events_gaps_by_heartbeat", "Gaps (among txzserver_events_gaps)"
                     " found by a heartbeat: events lost that no later event revealed.",
                     lambda: hub.heartbeat_gaps)
    readings.gauge("txzserver_websocket_subscribers", "Open WebSocket connections subscribed"
                   " to events.", lambda: len(hub))
    if settings.websocket is not None:
        limit = settings.websocket.max_connections
        readings.gauge("txzserver_websocket_subscribers_max", "<websocket> max-connections: the"
                       " subscribers this instance accepts.", lambda: limit)
    metrics.registry.register(zodb if zodb is not None else ZodbCollector())
    return MetricsSite(metrics, settings.metrics.path, reactor=reactor)


def open_listeners(reactor, sites):
    """Bind every listener now (before the reactor runs); BindError on the first failure."""
    ports = []
    for listener, site in sites:
        outcome = []
        try:
            endpoint_for(reactor, listener).listen(site).addBoth(outcome.append)
        except Exception as exc:  # bad certificate files and the like
            raise BindError(f"{listener.kind} {listener.host}:{listener.port}: {exc}") from exc
        if not outcome or isinstance(outcome[0], Failure):
            reason = outcome[0].getErrorMessage() if outcome else "listen did not complete"
            raise BindError(f"cannot listen on {listener.host or '*'}:{listener.port}: {reason}")
        port = outcome[0]
        ports.append(port)
        extra = " (HTTP/2 by ALPN)" if listener.http2 else " (h2c)" if listener.h2c else ""
        log.info("txzserver %s listening on %s%s", listener.kind,
                 url_of(listener, port.getHost().port), extra)
        if listener.http3:
            # not in ``ports``: the drain closes QUIC itself (H3Endpoint.drain)
            open_quic(reactor, listener, site, port.getHost().port)
    return ports


def open_quic(reactor, listener, site, port):
    """HTTP/3: the UDP socket at the https listener's address and port; its responses
    announce it (Alt-Svc); on shutdown its own drain (GOAWAY, then CONNECTION_CLOSE once the
    responses in flight are acknowledged). BindError when the UDP port is taken."""
    try:
        endpoint = H3Endpoint(site, site.settings, quic_configuration(listener, site.settings),
                              max_datagram_size=listener.http3_max_datagram_size)
        udp = QuicPort(port, endpoint, interface=listener.interface, reactor=reactor)
        udp.startListening()
    except Exception as exc:
        raise BindError(f"http3 (QUIC, udp) {listener.host}:{port}: {exc}") from exc
    reactor.addSystemEventTrigger("before", "shutdown", endpoint.drain, reactor,
                                  site.settings.shutdown_timeout, site.settings.shutdown_delay)
    site.resource.alt_svc = alt_svc(port).encode()
    log.info("txzserver https listening on udp %s:%s (HTTP/3 over QUIC)",
             listener.interface, port)
    return udp


def serve(opts, settings, site_id=None, site_factory=None):
    """Start Zope from a parsed zope.conf and serve until SIGTERM/SIGINT; return the exit status.

    The sockets are opened before Zope starts, so a taken port fails in a fraction of a
    second; connections made while Zope starts wait in the listen backlog.
    """
    configure_logging(opts.configroot)
    log.info("reactor: %s", install_reactor(settings.reactor))

    def start_app():
        app = start_zope(opts, settings)
        if site_id and site_factory is not None:
            site_factory(site_id)
        return app

    return run(start_app, settings, on_stop=close_zope, site_id=site_id)


def wire_task_queues(reactor, tasks, app, settings):
    """Run the task queues on the publisher pool once the reactor runs; stop them first at
    shutdown (what is still queued is dropped, and logged)."""
    if not settings.task_queues:
        return
    task_auth.apply()
    tasks.set_app(app)
    reactor.callWhenRunning(tasks.start)
    reactor.addSystemEventTrigger("before", "shutdown", tasks.stop)
    reactor.addSystemEventTrigger("after", "shutdown", tasks.close)
    log.info("txzserver task queues: %s", ", ".join(
        f"{q.name} ({q.backend}, {q.concurrency} at once)" for q in settings.task_queues))


def raise_open_file_limit():
    """Lift the soft limit on open files to the hard one: each connection is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def apply_switch_interval(seconds):
    """Set the interpreter's GIL switch interval (python-switch-interval); return the one in
    force, in seconds."""
    if seconds is not None:
        sys.setswitchinterval(seconds)
    return sys.getswitchinterval()


def run(app_factory, settings, on_stop=None, site_id=None):
    """Listen, make the WSGI app with ``app_factory()``, serve until the reactor stops.

    The reactor must be installed already (install_reactor). ``on_stop`` runs after the
    reactor shut down (closing the ZODB). ``site_id``: the site readiness looks for.
    Returns the process exit status.
    """
    from twisted.internet import reactor  # installed by the caller: import it only now

    twisted_log.PythonLoggingObserver("txzserver.twisted").start()
    log.info("open file limit: %s", raise_open_file_limit())
    interval = settings.python_switch_interval
    log.info("Python switch interval: %g ms%s", apply_switch_interval(interval) * 1000,
             "" if interval is not None else " (Python's default)")
    pool = ThreadPool(settings.threads, settings.threads, name="zope-publisher")
    tracker = InFlight()
    hub = Hub()
    websocket = None
    if settings.websocket is not None:
        websocket = NotificationService(reactor, pool, settings.websocket, settings.instance_name, hub)
    metrics = ServerMetrics() if settings.metrics is not None else None
    try:
        sites = build_sites(reactor, pool, None, settings, tracker, websocket, metrics)
        ports = open_listeners(reactor, sites)
        publisher = make_event_publisher(reactor, hub, settings)
        tasks = TaskQueues.build(reactor, pool, settings.task_queues, security=(
            None if settings.event_bus is None else settings.event_bus.security()),
            bus=settings.event_bus, name=settings.instance_name)
        started, shared, health = None, {}, None
        if settings.health is not None:
            # Its own listener, not in ``ports``: the drain must not close it.
            health_site, started, shared = build_health(reactor, pool, settings, tracker, publisher,
                                                        site_id)
            health = health_site.resource.health
            open_listeners(reactor, [(settings.health.listener, health_site)])
        if metrics is not None:
            # Its own listener too: Prometheus may scrape while the others drain.
            metrics_site = build_metrics(reactor, metrics, settings, hub, publisher, shared=shared,
                                         health=health)
            open_listeners(reactor, [(settings.metrics.listener, metrics_site)])
    except (BindError, ValueError) as exc:
        log.error("%s", exc)
        print(f"txzserver: {exc}", file=sys.stderr)
        return 2
    register_event_publisher(publisher)
    register_task_queues(tasks)
    app = guard_storage(app_factory(), settings, shared)
    # Zope's and Plone's start-up objects (about a million) live as long as the process: keep
    # them out of the collector's full passes, which connection storms trigger and which
    # otherwise take long enough to be seen in page latency and handshake rates.
    gc.freeze()
    for _, site in sites:
        site.resource.app = app
    if websocket is not None:
        websocket.app = app
        reactor.addSystemEventTrigger("before", "shutdown", websocket.close_all)
        log.info("txzserver WebSocket endpoint at %s (and /SITE%s)", settings.websocket.path,
                 settings.websocket.path)
    reactor.callWhenRunning(publisher.start)
    reactor.addSystemEventTrigger("after", "shutdown", publisher.close)
    reactor.callWhenRunning(pool.start)
    wire_task_queues(reactor, tasks, app, settings)
    if started is not None:
        reactor.callWhenRunning(started.mark)  # app_factory() has returned: Zope runs
    reactor.callWhenRunning(log.info, "txzserver ready: %d publisher thread(s)", settings.threads)
    if restore_interrupt_signal():
        log.info("SIGINT was ignored when the server started (a background job of a shell?):"
                 " it stops the server gracefully, as SIGTERM does")
    reactor.addSystemEventTrigger("before", "shutdown", drain, reactor, ports, tracker,
                                  settings.shutdown_timeout, settings.shutdown_delay)
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
    if on_stop is not None:
        reactor.addSystemEventTrigger("after", "shutdown", on_stop)
    reactor.run()
    log.info("txzserver stopped")
    sys.stdout.flush()
    return 0
