"""The `txzserver` command: serve a zope.conf, make an instance folder, control it (ctl)."""

import argparse
import os
import sys


class _BadConfig(Exception):
    """Raised by _load after telling the user what is wrong with the zope.conf."""


def _load(path):
    """(ZopeWSGIOptions, ServerSettings) of ``path``, or _BadConfig after printing why."""
    from .config import ConfigError, load
    try:
        return load(path)
    except ConfigError as exc:
        print(f"txzserver: bad configuration: {exc}", file=sys.stderr)
        raise _BadConfig() from exc


def _cmd_serve(args):
    opts, settings = _load(args.config)
    site_factory = None
    if args.site:
        from functools import partial
        from .zope.sitesetup import DEFAULT_PROFILES, ensure_plone_site
        site_factory = partial(ensure_plone_site, profiles=DEFAULT_PROFILES + tuple(args.profile))
    from .app import serve  # imports Zope: only when serving
    return serve(opts, settings, site_id=args.site, site_factory=site_factory)


def _cmd_mkinstance(args):
    from .zope.instance import InstanceError, make_instance
    try:
        conf, user, password = make_instance(args.directory, args.user, address=args.address,
                                             threads=args.threads, zeo=args.zeo, force=args.force)
    except InstanceError as exc:
        print(f"txzserver: {exc}", file=sys.stderr)
        return 2
    print(f"created {conf}")
    if ":" not in args.user:
        print(f"admin user {user} with generated password: {password}")
    print(f"start it with: txzserver serve {conf}")
    print(f"or under supervisor: supervisord -c {os.path.join(os.path.dirname(conf), 'supervisord.conf')}"
          " (then `txzserver ctl -c ... status`)")
    return 0


def _cmd_run(args):
    """Run a Python script with Zope configured and ``app`` bound (like zconsole run)."""
    opts, settings = _load(args.config)
    from .zope.startup import close_zope, configure_logging, start_zope
    configure_logging(opts.configroot)
    start_zope(opts, settings)
    import runpy
    import Zope2
    app = Zope2.app()
    sys.argv = [args.script] + args.args
    try:
        runpy.run_path(args.script, init_globals={"app": app}, run_name="__main__")
    finally:
        app._p_jar.close()
        close_zope()
    return 0


def _cmd_broker(args):
    import logging

    import zmq

    from .bus.broker import run_broker
    from .bus.security import BrokerGuard, BusLimits, BusSecurityError, is_tcp
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    tasks = None if args.no_tasks else (args.tasks_frontend, args.tasks_backend)
    limits = BusLimits(args.max_message_size, args.high_water_mark)
    tcp = [end for end in (args.frontend, args.backend, *(tasks or ())) if is_tcp(end)]
    try:
        if args.curve == "on" and (args.curve_secret_key or args.curve_allow):
            if not (args.curve_secret_key and args.curve_allow):
                raise BusSecurityError("CURVE needs both --curve-secret-key and --curve-allow")
            guard = BrokerGuard.load(zmq.Context.instance(), limits, args.curve_secret_key,
                                     args.curve_allow)
        elif tcp and args.curve == "on":
            raise BusSecurityError(
                f"{tcp[0]} is tcp: give --curve-secret-key and --curve-allow (keys made by"
                " `txzserver buskeys`), or --curve off on a trusted network (anyone who reaches"
                " the port could read and send bus messages)")
        else:
            guard = BrokerGuard(zmq.Context.instance(), limits)
        if args.metrics:
            _broker_metrics(args.metrics, guard)
        return run_broker(args.frontend, args.backend, tasks=tasks, guard=guard)
    except BusSecurityError as exc:
        print(f"txzserver broker: {exc}", file=sys.stderr)
        return 2


def _broker_metrics(address, guard):
    """txzserver_bus_refused_peers_total on http://ADDRESS/metrics (Prometheus)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily

    class Refused:
        def collect(self):
            family = CounterMetricFamily(
                "txzserver_bus_refused_peers", "Connections the broker refused at the CURVE"
                " handshake, by endpoint and reason (handshake: no CURVE, a wrong server key;"
                " key-not-allowed: a client key outside the allow-list).",
                labels=("endpoint", "reason"))
            for (endpoint, reason), count in sorted(guard.refused.items()):
                family.add_metric((endpoint, reason), count)
            yield family

    registry = CollectorRegistry()
    registry.register(Refused())
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)


def _cmd_buskeys(args):
    """Write DIR/NAME.key (public) and DIR/NAME.key_secret (mode 0600)."""
    import zmq.auth
    os.makedirs(args.directory, mode=0o700, exist_ok=True)
    old = os.umask(0o077)
    try:
        public, secret = zmq.auth.create_certificates(args.directory, args.name)
    finally:
        os.umask(old)
    os.chmod(public, 0o644)
    if args.env:  # for `kubectl create secret generic ... --from-env-file` (the image's variables)
        public_key, secret_key = zmq.auth.load_certificate(secret)
        print(f"{args.name}-public={public_key.decode()}\n{args.name}-secret={secret_key.decode()}")
        return 0
    print(f"public key {public} (to the broker's --curve-allow, or <event-bus> server-key)")
    print(f"secret key {secret} (keep it: <event-bus> client-key, or --curve-secret-key)")
    return 0


def _durable_bus(args):
    """The <event-bus> `listen --durable` reads: the zope.conf's (--config), or the flags'."""
    if args.config:
        return _load(args.config)[1].event_bus
    if not args.nats_server:
        return None
    from .bus import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE
    from .config.datatypes import DEFAULT_STREAM, EventBusSettings, nats_url
    return EventBusSettings(
        DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE, backend="nats",
        nats_servers=tuple(nats_url(url) for url in args.nats_server),
        nats_credentials=args.nats_credentials or "", nats_nkey=args.nats_nkey or "",
        nats_tls_ca=args.nats_tls_ca or "", stream=args.stream or DEFAULT_STREAM)


def _cmd_listen(args):
    from .listen import ListenCommandError, listen, listen_durable
    try:
        if args.durable:
            try:
                bus = _durable_bus(args)
            except ValueError as exc:
                raise ListenCommandError(str(exc)) from exc
            return listen_durable(bus, args.durable, path=args.path, since=args.since,
                                  count=args.count, timeout=args.timeout,
                                  fail_on_gap=args.fail_on_gap, everything=args.all_events)
        if not args.url or args.since:
            raise ListenCommandError("give a WebSocket URL (or --durable NAME; --since is"
                                     " for --durable)")
        return listen(args.url, path=args.path, user=args.user, token=args.token,
                      count=args.count, timeout=args.timeout, fail_on_gap=args.fail_on_gap)
    except ListenCommandError as exc:
        print(f"txzserver listen: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _cmd_ctl(args):
    from .ctl import Control, CtlError, connect, debug, find_config, zope_conf_for
    try:
        config = find_config(args.configuration)
        if args.action == "debug":
            opts, settings = _load(zope_conf_for(config, args.zope_conf))
            return debug(opts, settings, stdin=sys.stdin)
        control = Control(connect(config))
        if args.action == "tail":
            return control.tail(args.names[0] if args.names else None, follow=args.follow,
                                length=args.bytes, stream=args.stream)
        return getattr(control, args.action)(args.names)
    except CtlError as exc:
        print(f"txzserver ctl: {exc}", file=sys.stderr)
        return exc.status


def _cmd_checkconfig(args):
    _, settings = _load(args.config)
    for listener in settings.listeners:
        print(f"{listener.kind} {listener.host or '*'}:{listener.port}")
    if settings.health is not None:
        health = settings.health.listener
        print(f"health {health.host or '*'}:{health.port}")
    if settings.metrics is not None:
        metrics = settings.metrics.listener
        print(f"metrics {metrics.host or '*'}:{metrics.port}{settings.metrics.path}")
    return 0


def build_parser():
    from . import __version__
    from .bus import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE, DEFAULT_TASKS_PULL, DEFAULT_TASKS_PUSH
    from .bus.security import DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_MESSAGE_SIZE
    from .listen import GAP_STATUS

    parser = argparse.ArgumentParser(prog="txzserver", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run Zope with the Twisted server")
    serve.add_argument("config", help="path to zope.conf")
    serve.add_argument("--site", metavar="ID",
                       help="create a Plone site (Classic UI) with this id on first start")
    serve.add_argument("--profile", action="append", default=[], metavar="PACKAGE:NAME",
                       help="extra GenericSetup profile for the site made by --site (repeatable)")
    serve.set_defaults(func=_cmd_serve)

    mk = commands.add_parser("mkinstance", help="create an instance folder")
    mk.add_argument("directory")
    mk.add_argument("--user", required=True, metavar="NAME[:PASSWORD]",
                    help="initial Manager; the password is generated when not given")
    mk.add_argument("--zeo", metavar="HOST:PORT", help="use a ZEO server instead of a FileStorage")
    mk.add_argument("--address", default="8080", help="address of the <http-server> (default 8080)")
    mk.add_argument("--threads", type=int, default=4, help="server-threads (default 4)")
    mk.add_argument("--force", action="store_true", help="overwrite an existing etc/zope.conf")
    mk.set_defaults(func=_cmd_mkinstance)

    run = commands.add_parser("run", help="run a script with Zope configured and `app` bound")
    run.add_argument("config")
    run.add_argument("script")
    run.add_argument("args", nargs=argparse.REMAINDER)
    run.set_defaults(func=_cmd_run)

    broker = commands.add_parser("broker", help="run the ZeroMQ event bus broker (XSUB/XPUB)")
    broker.add_argument("--frontend", default=DEFAULT_PUBLISH,
                        help=f"endpoint instances publish to (bound here; default {DEFAULT_PUBLISH})")
    broker.add_argument("--backend", default=DEFAULT_SUBSCRIBE,
                        help=f"endpoint instances subscribe from (bound here; default {DEFAULT_SUBSCRIBE})")
    broker.add_argument("--tasks-frontend", default=DEFAULT_TASKS_PUSH,
                        help="endpoint instances push tasks to (a <task-queue>'s push; bound here;"
                             f" default {DEFAULT_TASKS_PUSH})")
    broker.add_argument("--tasks-backend", default=DEFAULT_TASKS_PULL,
                        help="endpoint instances pull tasks from (a <task-queue>'s pull; bound here;"
                             f" default {DEFAULT_TASKS_PULL})")
    broker.add_argument("--no-tasks", action="store_true", help="forward events only, no task stream")
    broker.add_argument("--curve", choices=("on", "off"), default="on",
                        help="on (default): tcp endpoints need --curve-secret-key and"
                             " --curve-allow; off: plain tcp, only on a trusted network")
    broker.add_argument("--curve-secret-key", metavar="FILE",
                        help="the broker's secret certificate (`txzserver buskeys DIR broker`:"
                             " DIR/broker.key_secret)")
    broker.add_argument("--curve-allow", metavar="PATH",
                        help="client public certificates allowed in: a NAME.key file or a"
                             " directory of them")
    broker.add_argument("--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE,
                        help="ZMQ_MAXMSGSIZE in bytes: a larger message disconnects its sender"
                             f" (default {DEFAULT_MAX_MESSAGE_SIZE})")
    broker.add_argument("--high-water-mark", type=int, default=DEFAULT_HIGH_WATER_MARK,
                        help=f"messages queued per socket and peer (default {DEFAULT_HIGH_WATER_MARK})")
    broker.add_argument("--metrics", metavar="[HOST:]PORT",
                        help="serve Prometheus metrics (refused peers) on this address")
    broker.set_defaults(func=_cmd_broker)

    keys = commands.add_parser("buskeys", help="make a CURVE key pair for the bus (z85 files)")
    keys.add_argument("directory", help="where to write NAME.key and NAME.key_secret")
    keys.add_argument("name", help="e.g. broker, or an instance's name")
    keys.add_argument("--env", action="store_true",
                      help="print NAME-public=... and NAME-secret=... (z85) for a Kubernetes Secret")
    keys.set_defaults(func=_cmd_buskeys)

    listen = commands.add_parser("listen", help="print the events a user receives, one JSON line each")
    listen.add_argument("url", nargs="?",
                        help="WebSocket URL, e.g. ws://127.0.0.1:8080/Plone/ws (not with --durable)")
    listen.add_argument("--path", help="subscribe to this path prefix (default: the site)")
    listen.add_argument("--user", metavar="NAME:PASSWORD", help="Basic auth credentials")
    listen.add_argument("--token", help="plone.restapi JWT (Bearer)")
    listen.add_argument("--count", type=int, default=0, help="exit after this many events")
    listen.add_argument("--timeout", type=float, default=0,
                        help="exit 0 after this many seconds (0: run until interrupted)")
    listen.add_argument("--fail-on-gap", action="store_true",
                        help="exit with status %d at the first gap message (the server lost"
                             " events on the bus: rebuild from scratch); gaps are printed"
                             " as JSON lines either way" % GAP_STATUS)
    durable = listen.add_argument_group(
        "durable (nats bus)", "read the bus's stream with a durable consumer: a listener that"
        " was stopped gets every event it missed, in order, once, then goes on live")
    durable.add_argument("--durable", metavar="NAME", help="the durable consumer's name")
    durable.add_argument("--since", metavar="SEQ|ISO-TIME",
                         help="start (again) at this stream sequence or time")
    durable.add_argument("--config", metavar="ZOPE_CONF", help="read <event-bus> from it")
    durable.add_argument("--nats-server", action="append", metavar="URL",
                         help="instead of --config: a NATS server (repeatable)")
    durable.add_argument("--nats-credentials", metavar="FILE")
    durable.add_argument("--nats-nkey", metavar="FILE")
    durable.add_argument("--nats-tls-ca", metavar="FILE")
    durable.add_argument("--stream", help="default TXZSERVER_EVENTS, as <event-bus> stream")
    durable.add_argument("--all-events", action="store_true",
                         help="print every event, not only those anonymous visitors may see")
    listen.set_defaults(func=_cmd_listen)

    ctl = commands.add_parser(
        "ctl", help="control the instance under supervisord (plonectl): status, start, stop,"
                    " restart, tail, debug",
        description="Exit status: 0 done (status: all RUNNING), 1 an action failed, 2 usage"
                    " (no supervisord.conf, unknown program), 3 status: a program is not"
                    " RUNNING, 4 supervisord is not running.")
    ctl.add_argument("-c", "--configuration", metavar="SUPERVISORD_CONF",
                     help="default: $TXZSERVER_SUPERVISORD_CONF, ./etc/supervisord.conf,"
                          " /app/etc/supervisord.conf")
    ctl.add_argument("action", choices=("status", "start", "stop", "restart", "tail", "debug"))
    ctl.add_argument("names", nargs="*", metavar="PROGRAM",
                     help="programs (default all; tail: the instance)")
    ctl.add_argument("-f", "--follow", action="store_true", help="tail: keep printing new output")
    ctl.add_argument("--bytes", type=int, default=4096, help="tail: how much of the log (default 4096)")
    ctl.add_argument("--stream", choices=("stdout", "stderr"), default="stdout", help="tail: which log")
    ctl.add_argument("--zope-conf", help="debug: zope.conf (default: next to the supervisord.conf)")
    ctl.set_defaults(func=_cmd_ctl)

    check = commands.add_parser("checkconfig", help="parse a zope.conf and list its listeners")
    check.add_argument("config")
    check.set_defaults(func=_cmd_checkconfig)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _BadConfig:
        return 2


if __name__ == "__main__":
    sys.exit(main())
