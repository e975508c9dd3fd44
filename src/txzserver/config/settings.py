"""The server's view of zope.conf: one frozen, validated object built from the ZConfig root."""

import dataclasses
import socket
from dataclasses import dataclass

from . import keys
from .datatypes import (
    HTTP1_PARSERS, LOG_FORMATS, EventBusSettings, HealthSettings, Listener, MetricsSettings,
    TaskQueueSettings, WebSocketSettings,
)


class SettingsError(ValueError):
    """zope.conf parsed, but its server settings do not make sense together."""


SECONDS = 1.0
KB = 1024


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server needs from zope.conf (or paste options), handed to each object
    that uses it when it is built. The zope.conf key of each field is its name with dashes."""

    #: the sockets to open: <http-server>, <https-server>, <webdav-source-server>
    listeners: tuple[Listener, ...]
    #: publisher threads (server-threads), each with its own ZODB connection
    threads: int = 4
    #: auto, uvloop, asyncio or default
    reactor: str = "auto"
    #: sys.setswitchinterval for the process, seconds; None: Python's own
    python_switch_interval: float | None = None
    #: access log line format: common or combined
    access_log_format: str = "combined"
    #: text, or json: one JSON object per line in the event log and the access log
    log_format: str = "text"
    #: how HTTP/1.1 is read: twisted (HTTPChannel) or llhttp (httptools, lean requests)
    http1_parser: str = "llhttp"
    #: larger request bodies get 413; 0 means no limit
    max_request_body_size: int = 1024 * 1024 * KB
    #: request bodies above this (or of unknown length) are spooled to a temporary file
    request_spool_threshold: int = 512 * KB
    #: bytes of all spooled request bodies of the process at once; beyond: 503 with
    #: Retry-After; 0 means no cap
    max_spool_size: int = 2 * 1024 * 1024 * KB
    #: larger bodies of requests without credentials (no Authorization, no __ac or
    #: auth_token cookie) get 413; 0 means only max-request-body-size applies
    max_anonymous_body_size: int = 10 * 1024 * KB
    #: request line plus headers (HTTP/1.1), decoded header list (HTTP/2); more gets 431
    max_header_size: int = 64 * KB
    #: header lines per request; more gets 431
    max_headers: int = 200
    #: connections idle this long are closed (not while a request is published or sent)
    idle_timeout: float = 60 * SECONDS
    #: request line plus headers must arrive within this (from the connection's start or the
    #: request's first byte); else 408 and close. Bodies are bound by idle_timeout only
    header_timeout: float = 10 * SECONDS
    #: open HTTP connections per process (WebSockets have their own limit); at the limit the
    #: longest idle one is closed for a newcomer, 503 only when none is idle
    max_connections: int = 1000
    #: on SIGTERM, how long requests in flight may take before the process stops anyway
    shutdown_timeout: float = 30 * SECONDS
    #: on SIGTERM, how long the listeners keep accepting while readiness fails
    shutdown_delay: float = 0 * SECONDS
    #: size of the reads when streaming files and blobs from the reactor
    stream_chunk_size: int = 256 * KB
    #: addresses whose X-Forwarded-For/-Proto/-Host are believed
    trusted_proxies: tuple[str, ...] = ()
    #: requests of one connection in the publisher pool at once (queued or running); 0 = threads
    max_publishing_per_connection: int = 0
    #: SETTINGS_MAX_CONCURRENT_STREAMS advertised to HTTP/2 clients
    http2_max_concurrent_streams: int = 100
    #: stream resets (RST_STREAM) one HTTP/2 client may send at once
    http2_max_reset_burst: int = 100
    #: resets per second given back to that budget; past it: GOAWAY ENHANCE_YOUR_CALM
    http2_reset_rate: float = 10.0
    #: SETTINGS and PING frames one HTTP/2 client may send at once (each is answered)
    http2_max_control_frames: int = 100
    #: control frames per second given back to that budget; past it: ENHANCE_YOUR_CALM
    http2_control_frame_rate: float = 10.0
    #: the <health-server> section (/healthz/live, /ready, /startup on a listener of their own,
    #: outside the Zope tree and max-connections), or None for no health endpoints
    health: HealthSettings | None = None
    #: the <metrics-server> section (Prometheus metrics on a listener of their own), or None
    metrics: MetricsSettings | None = None
    #: the <websocket> section, or None for no WebSocket endpoint
    websocket: WebSocketSettings | None = None
    #: the <event-bus> section, or None for in-process events only
    event_bus: EventBusSettings | None = None
    #: X-Txzserver-Instance header and WebSocket welcome; the host name when empty
    instance_name: str = ""
    #: the <task-queue NAME> sections; None: one local queue "default" when server-threads >= 2
    task_queues: tuple[TaskQueueSettings, ...] | None = None

    def __post_init__(self):
        if not self.instance_name:
            object.__setattr__(self, "instance_name", socket.gethostname())
        if self.task_queues is None:
            implicit = (TaskQueueSettings("default"),) if self.threads >= 2 else ()
            object.__setattr__(self, "task_queues", implicit)
        self._check_task_queues()
        if not self.listeners:
            raise SettingsError("no server section: add at least one <http-server> or <https-server>")
        if self.threads < 1:
            raise SettingsError(f"server-threads must be at least 1, not {self.threads}")
        if self.header_timeout <= 0:
            raise SettingsError(f"header-timeout must be positive, not {self.header_timeout}")
        if self.max_connections < 1:
            raise SettingsError(f"max-connections must be at least 1, not {self.max_connections}")
        if self.max_header_size < 1024:
            raise SettingsError(f"max-header-size must be at least 1KB, not {self.max_header_size}")
        if self.max_publishing_per_connection < 0:
            raise SettingsError("max-publishing-per-connection must be 0 (= server-threads) or more")
        if self.http2_max_concurrent_streams < 1:
            raise SettingsError("http2-max-concurrent-streams must be at least 1")
        if self.http2_max_reset_burst < 1 or self.http2_reset_rate <= 0:
            raise SettingsError("http2-max-reset-burst and http2-reset-rate must be positive")
        if self.http2_max_control_frames < 1 or self.http2_control_frame_rate <= 0:
            raise SettingsError("http2-max-control-frames and http2-control-frame-rate must be"
                                " positive")
        if self.stream_chunk_size < 1024:
            raise SettingsError(f"stream-chunk-size must be at least 1KB, not {self.stream_chunk_size}")
        sources = [s for s in self.listeners if s.kind == "webdav-source"]
        if len(sources) > 1:
            raise SettingsError("only one <webdav-source-server> is allowed (Zope knows one source port)")
        seen = set()
        for listener in self.listeners:
            key = (listener.interface, listener.port)
            if listener.port and key in seen:
                raise SettingsError(
                    f"two server sections listen on {listener.host or '*'}:{listener.port}")
            seen.add(key)
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"log-format must be one of {', '.join(LOG_FORMATS)}")
        if self.http1_parser not in HTTP1_PARSERS:
            raise SettingsError(f"http1-parser must be one of {', '.join(HTTP1_PARSERS)}")
        for name, section in (("<health-server>", self.health), ("<metrics-server>", self.metrics)):
            if section is None:
                continue
            own = section.listener
            if own.port and (own.interface, own.port) in seen:
                raise SettingsError(f"{name} and another server section both listen on"
                                    f" {own.host or '*'}:{own.port}")
            seen.add((own.interface, own.port))

    def _check_task_queues(self):
        zmq_endpoints = [end for queue in self.task_queues if queue.backend == "zmq"
                         for end in (queue.push, queue.pull)]
        if any(end.startswith("tcp://") for end in zmq_endpoints):
            bus = self.event_bus
            problem = ("a zmq <task-queue> over tcp needs the <event-bus> section (its keys)"
                       if bus is None else bus.needs_keys(zmq_endpoints))
            if problem:
                raise SettingsError(problem)
        if any(queue.backend == "nats" for queue in self.task_queues) and (
                self.event_bus is None or self.event_bus.backend != "nats"):
            raise SettingsError("a nats <task-queue> needs an <event-bus> with backend nats"
                                " (its nats-server and credentials)")
        names = [queue.name for queue in self.task_queues]
        if len(set(names)) != len(names):
            raise SettingsError(f"two <task-queue> sections have the same name: {', '.join(names)}")
        busy = sum(queue.concurrency for queue in self.task_queues)
        if busy and busy >= self.threads:
            raise SettingsError(
                f"the task queues run up to {busy} task(s) at once: that must stay below"
                f" server-threads ({self.threads}), so a share of the threads stays free for HTTP")

    @property
    def publish_share(self) -> int:
        """Requests of one connection in the publisher pool at once."""
        return self.max_publishing_per_connection or self.threads

    @property
    def webdav_source_port(self) -> int:
        return next((s.port for s in self.listeners if s.kind == "webdav-source"), 0)

    @classmethod
    def from_zconfig(cls, root):
        """Each field from the key (or section) of its name on the ZConfig root, as a float
        where the field is one; the few others as ZCONFIG_READERS says."""
        values = {}
        for field in dataclasses.fields(cls):
            reader = ZCONFIG_READERS.get(field.name)
            value = reader(root) if reader else getattr(root, field.name)
            values[field.name] = float(value) if _is_float(field) else value
        return cls(**values)

    @classmethod
    def from_paste(cls, listen="127.0.0.1:8080", h2c="on", **options):
        """Settings from ``[server:main]`` options of a zope.ini (strings); ValueError for
        unknown or bad ones. Each option is the zope.conf key with underscores."""
        known = paste_options(cls)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown txzserver option(s): {', '.join(unknown)};"
                             f" known: listen, h2c, {', '.join(sorted(known))}")
        h2c_on = _paste_bool(h2c)
        listeners = tuple(Listener("http", *_paste_address(a), h2c=h2c_on) for a in listen.split())
        values = {}
        for option, value in options.items():
            field, convert = known[option]
            try:
                values[field] = convert(value)
            except ValueError as exc:
                raise ValueError(f"txzserver option {option} = {value!r}: {exc}") from exc
        return cls(listeners=listeners, **values)


#: The fields not read from the zope.conf key or section of their own name (the field's name
#: with dashes): how each is read from the ZConfig root instead.
ZCONFIG_READERS = {
    "listeners": lambda root: tuple(root.servers),
    "threads": lambda root: root.server_threads,
    "trusted_proxies": lambda root: tuple(root.trusted_proxies or ()) + tuple(
        net for net in root.trusted_proxy_networks or () if net),
    "task_queues": lambda root: tuple(root.task_queues) if root.task_queues else None,
}

#: zope.conf keys of the fields named otherwise (the paste option keeps the field's name).
ZOPE_CONF_KEYS = {"threads": "server-threads"}

#: paste options that are no field's name: option -> (field, converter). ``listen`` and
#: ``h2c`` (the listeners) are from_paste's own arguments; sections have no paste option.
PASTE_RENAMED = {"trusted_proxy": ("trusted_proxies", lambda value: tuple(value.split()))}


def zope_conf_key(field_name, schema=None):
    """The top-level zope.conf key of a ServerSettings field, or None (a section, or read
    from several keys)."""
    schema = schema or keys.shipped()
    return schema.key(ZOPE_CONF_KEYS.get(field_name, field_name.replace("_", "-")))


def paste_options(cls=None, schema=None):
    """paste option -> (field, converter): every field with a zope.conf key, converted by the
    key's own datatype (units as in zope.conf: 1GB, 60s); a plain number of seconds may
    have a fraction. Plus PASTE_RENAMED."""
    schema = schema or keys.shipped()
    options = {}
    for field in dataclasses.fields(cls or ServerSettings):
        key = zope_conf_key(field.name, schema)
        if key is not None:
            options[field.name] = (field.name, _paste_converter(schema.converter(key), key.multi,
                                                                _is_float(field)))
    options.update(PASTE_RENAMED)
    return options


def _is_float(field):
    return field.type in (float, "float")


def _paste_converter(convert, multi, seconds):
    def paste_value(value):
        if multi:
            return tuple(v for v in (convert(word) for word in value.split()) if v is not None)
        if seconds:
            try:
                return float(value)
            except ValueError:
                return float(convert(value.strip()))
        return convert(value.strip())
    return paste_value


def _paste_bool(value):
    value = str(value).strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _paste_address(value):
    host, _, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not port.isdigit():
        raise ValueError(f"listen address needs host:port, not {value!r}")
    return host, int(port)

