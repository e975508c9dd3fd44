"""ZConfig datatypes of txzserver's keys and sections: listeners, <health-server>,
<metrics-server>, <websocket>, <event-bus>, <task-queue>, <logger>; each section becomes a
frozen dataclass."""

import ipaddress
import os
import re
from dataclasses import MISSING, dataclass, fields
from urllib.parse import urlsplit

from ZConfig.components.logger.logger import LoggerFactory

from ..bus import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE, DEFAULT_TASKS_PULL, DEFAULT_TASKS_PUSH
from ..bus.message import DEFAULT_HEARTBEAT_INTERVAL, MAX_HEARTBEAT_INTERVAL
from ..bus.security import (DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_MESSAGE_SIZE, BusLimits,
                            BusSecurityError, ClientSecurity)

REACTORS = ("auto", "uvloop", "asyncio", "default")
ACCESS_LOG_FORMATS = ("common", "combined")
LOG_FORMATS = ("text", "json")
HTTP1_PARSERS = ("twisted", "llhttp")
TASK_BACKENDS = ("local", "zmq", "nats")


@dataclass(frozen=True)
class Listener:
    """One socket to listen on; ``kind``: "http", "https", "webdav-source", "health", "metrics"."""

    kind: str
    host: str
    port: int
    backlog: int = 128
    h2c: bool = False
    http2: bool = False
    #: HTTP/3 over QUIC on UDP at the same address and port (https only)
    http3: bool = False
    #: the largest QUIC datagram path MTU discovery may raise HTTP/3 to (https only)
    http3_max_datagram_size: int = 16384
    certificate: str | None = None
    private_key: str | None = None

    @property
    def interface(self) -> str:
        """The address to bind: ZConfig gives "" for "all interfaces"."""
        return self.host or "0.0.0.0"


def from_section(cls, section, **given):
    """``cls`` (a section's frozen dataclass) from its ZConfig section: each field not
    ``given`` from the key of its name (dashes for underscores): repeated keys as a tuple,
    durations as float seconds, strings stripped, a key without value as the class default.
    A field without a key is an AttributeError at the first load (no silent default)."""
    values = dict(given)
    for field in fields(cls):
        if field.name in values:
            continue
        value = getattr(section, field.name)
        if value is None:
            value = () if field.default is MISSING else field.default
        if isinstance(value, list):
            value = tuple(value)
        elif field.type in (float, "float"):
            value = float(value)
        elif isinstance(value, str):
            value = value.strip()
        values[field.name] = value
    return cls(**values)


def _address(section):
    host, port = section.address
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {section.getSectionType()}: {port}")
    return host or "", port


def http_server(section):
    host, port = _address(section)
    return Listener("http", host, port, section.backlog, h2c=section.h2c)


def https_server(section):
    host, port = _address(section)
    datagram = section.http3_max_datagram_size
    if not 1200 <= datagram <= 65507:
        raise ValueError(f"http3-max-datagram-size must be 1200 to 65507 bytes (QUIC's smallest"
                         f" datagram to UDP's largest over IPv4), not {datagram}")
    return Listener(
        "https", host, port, section.backlog, http2=section.http2, http3=section.http3,
        http3_max_datagram_size=datagram,
        certificate=section.certificate, private_key=section.private_key,
    )


def webdav_source_server(section):
    host, port = _address(section)
    return Listener("webdav-source", host, port, section.backlog)


@dataclass(frozen=True)
class HealthSettings:
    """The ``<health-server>`` section: the probes' own listener and their bounds (seconds)."""

    listener: Listener
    stuck_after: float = 300.0
    check_interval: float = 5.0
    check_timeout: float = 10.0
    #: how long a request waits for a lost storage server before it fails (503)
    storage_wait: float = 1.0

    def __post_init__(self):
        for name in ("stuck_after", "check_interval", "check_timeout", "storage_wait"):
            if getattr(self, name) <= 0:
                raise ValueError(f"health-server {name.replace('_', '-')} must be positive")


def health_settings(section):
    host, port = _address(section)
    return from_section(HealthSettings, section, listener=Listener("health", host, port,
                                                                   section.backlog))


@dataclass(frozen=True)
class MetricsSettings:
    """The ``<metrics-server>`` section: the Prometheus listener and the path it answers."""

    listener: Listener
    path: str = "/metrics"

    def __post_init__(self):
        object.__setattr__(self, "path", metrics_path(self.path))


def metrics_path(value):
    """Key datatype: "/metrics/" -> "/metrics"; a bad path is reported with its line."""
    path = value.strip()
    if path != "/":
        path = path.rstrip("/")
    if not path.startswith("/") or "//" in path or "?" in path or " " in path:
        raise ValueError(f"metrics path must look like /metrics, not {value!r}")
    return path


def metrics_settings(section):
    host, port = _address(section)
    return from_section(MetricsSettings, section, listener=Listener("metrics", host, port,
                                                                    section.backlog))


@dataclass(frozen=True)
class WebSocketSettings:
    """The ``<websocket>`` section."""

    path: str = "/ws"
    site: str = "Plone"
    allowed_origins: tuple = ()
    max_connections: int = 10000
    max_message_size: int = 64 * 1024
    ping_interval: float = 30.0
    ping_timeout: float = 20.0
    #: seconds a handshake's principal lookup is reused for the same credentials; 0: none
    principal_cache_ttl: float = 60.0
    #: distinct credentials remembered at most (the least recently used go first)
    principal_cache_size: int = 10000
    #: request headers besides the credentials and the client address that split the cache
    #: (a PAS plugin's source of users or roles, e.g. an SSO front's X-Remote-User)
    principal_cache_headers: tuple = ()
    #: seconds a connection lives at most (minus up to a tenth, so that connections opened
    #: together do not all come back at once); then closed with 4001 and the client
    #: reconnects, authenticated anew; 0: no limit
    max_connection_age: float = 3600.0

    def __post_init__(self):
        if self.max_connection_age < 0:
            raise ValueError("websocket max-connection-age must not be negative")
        if self.principal_cache_ttl < 0 or self.principal_cache_size < 0:
            raise ValueError("websocket principal-cache-ttl and principal-cache-size must not be negative")
        if not self.path.startswith("/") or self.path == "/" or "//" in self.path:
            raise ValueError(f"websocket path must look like /ws, not {self.path!r}")
        if self.max_connections < 1:
            raise ValueError("websocket max-connections must be at least 1")
        for origin in self.allowed_origins:
            if "://" not in origin:
                raise ValueError(f"allowed-origin must be scheme://host[:port], not {origin!r}")


def proxy_network(value):
    """``trusted-proxy-network``: a network in CIDR notation, or "" (ignored) -> str or None."""
    value = value.strip()
    if not value:
        return None
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise ValueError(f"trusted-proxy-network must be a network like 10.0.0.0/8, not {value!r}"
                         ) from exc


def websocket_path(value):
    """Key datatype, so a bad value is reported with its line: "/live/ws/" -> "/live/ws"."""
    path = value.strip().rstrip("/")
    if not path.startswith("/") or "//" in path:
        raise ValueError(f"websocket path must look like /ws, not {value!r}")
    return path


def origin(value):
    """Key datatype of allowed-origin: "HTTPS://Example.org/" -> "https://example.org"."""
    normal = value.strip().rstrip("/").lower()
    if "://" not in normal:
        raise ValueError(f"allowed-origin must be scheme://host[:port], not {value!r}")
    return normal


def websocket_settings(section):
    return from_section(WebSocketSettings, section)


BUS_SCHEMES = ("ipc://", "tcp://", "inproc://")


CURVE_CHOICES = ("on", "off")
BUS_BACKENDS = ("zmq", "nats")
NATS_SCHEMES = ("nats://", "tls://")
DEFAULT_STREAM = "TXZSERVER_EVENTS"


@dataclass(frozen=True)
class EventBusSettings:
    """The ``<event-bus>`` section: where to publish to and subscribe from, and how this
    instance proves itself to the broker on tcp (CURVE keys; the zmq task queues use the same).

    Over tcp without keys it refuses to start unless ``curve`` is "off" (a trusted network,
    said so on purpose): nobody runs an open bus by accident. ipc needs no keys."""

    publish: str = DEFAULT_PUBLISH
    subscribe: str = DEFAULT_SUBSCRIBE
    curve: str = "on"
    #: the broker's public certificate (``txzserver buskeys DIR broker``: DIR/broker.key)
    server_key: str = ""
    #: this client's secret certificate (DIR/NAME.key_secret)
    client_key: str = ""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    high_water_mark: int = DEFAULT_HIGH_WATER_MARK
    #: seconds between two heartbeats of this instance's zmq publisher run (its last number)
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    #: "zmq" (through `txzserver broker`) or "nats" (a JetStream stream)
    backend: str = "zmq"
    #: the NATS servers' URLs (nats:// or tls://), for backend nats
    nats_servers: tuple = ()
    #: a NATS .creds file, an nkey seed file, a CA file for tls:// ("" for none)
    nats_credentials: str = ""
    nats_nkey: str = ""
    nats_tls_ca: str = ""
    #: the JetStream stream of the events and its limits (seconds, bytes)
    stream: str = DEFAULT_STREAM
    max_age: float = 24 * 3600.0
    max_bytes: int = 1024 ** 3

    def __post_init__(self):
        if self.backend not in BUS_BACKENDS:
            raise ValueError(f"event-bus backend must be zmq or nats, not {self.backend!r}")
        if self.backend == "nats":
            self._check_nats()
        for name in ("publish", "subscribe"):
            value = getattr(self, name)
            if not value.startswith(BUS_SCHEMES):
                raise ValueError(f"event-bus {name} must be an ipc://, tcp:// or inproc:// endpoint,"
                                 f" not {value!r}")
        if self.curve not in CURVE_CHOICES:
            raise ValueError(f"event-bus curve must be on or off, not {self.curve!r}")
        if not 1 <= self.heartbeat_interval <= MAX_HEARTBEAT_INTERVAL:
            raise ValueError(f"event-bus heartbeat-interval must be between 1s and"
                             f" {MAX_HEARTBEAT_INTERVAL:g}s, not {self.heartbeat_interval:g}s")
        if self.max_message_size < 1024 or self.high_water_mark < 1:
            raise ValueError("event-bus max-message-size must be at least 1KB and"
                             " high-water-mark at least 1")
        if self.curve == "on" and (self.server_key or self.client_key):
            self.security()  # the files are read now, so a bad one stops the start

    def _check_nats(self):
        """A clear error now for what would only fail at the first connection."""
        if not self.nats_servers:
            raise ValueError("event-bus backend nats needs at least one nats-server"
                             " (nats://host:4222 or tls://host:4222)")
        for url in self.nats_servers:
            nats_url(url)
        for key in ("nats_credentials", "nats_nkey", "nats_tls_ca"):
            path = getattr(self, key)
            if path and not os.path.isfile(path):
                raise ValueError(f"event-bus {key.replace('_', '-')}: no such file {path!r}")
        if self.nats_credentials and self.nats_nkey:
            raise ValueError("event-bus: give nats-credentials or nats-nkey, not both")
        if not NATS_NAME.fullmatch(self.stream):
            raise ValueError(f"event-bus stream must be letters, digits, - and _, not"
                             f" {self.stream!r:.80}")
        if self.max_age <= 0 or self.max_bytes < 1024:
            raise ValueError("event-bus max-age must be above 0 and max-bytes at least 1KB")

    def needs_keys(self, endpoints):
        """Why ``endpoints`` cannot be used as configured (tcp without keys), or None."""
        tcp = [endpoint for endpoint in endpoints if endpoint.startswith("tcp://")]
        if tcp and self.curve == "on" and not (self.server_key and self.client_key):
            return (f"the bus endpoint {tcp[0]} is tcp: <event-bus> needs server-key and"
                    " client-key (made by `txzserver buskeys`), or `curve off` on a trusted"
                    " network (anyone who reaches the port could read and send bus messages)")
        return None

    def security(self):
        """The ClientSecurity of this section (CURVE keys read from their files)."""
        limits = BusLimits(self.max_message_size, self.high_water_mark)
        if self.curve == "off" or not (self.server_key and self.client_key):
            return ClientSecurity(limits)
        try:
            return ClientSecurity.load(self.server_key, self.client_key, limits)
        except BusSecurityError as exc:
            raise ValueError(str(exc)) from exc


#: what a stream (or consumer) name may hold: no dots, blanks or wildcards
NATS_NAME = re.compile(r"[A-Za-z0-9_-]{1,200}")


def nats_url(value):
    """Key datatype of nats-server: a nats:// or tls:// URL with a host."""
    url = value.strip()
    if not url.startswith(NATS_SCHEMES) or not urlsplit(url).hostname:
        raise ValueError(f"event-bus nats-server must be a nats:// or tls:// URL, not"
                         f" {value.split('@')[-1]!r} (user:password, if any, not shown)")
    return url


def bus_endpoint(value):
    """Key datatype of the <event-bus> endpoints, so a bad one is reported with its line."""
    endpoint = value.strip()
    if not endpoint.startswith(BUS_SCHEMES):
        raise ValueError(f"event-bus endpoint must be an ipc://, tcp:// or inproc:// endpoint,"
                         f" not {value!r}")
    return endpoint


def event_bus_settings(section):
    settings = from_section(EventBusSettings, section)
    problem = settings.backend == "zmq" and settings.needs_keys((settings.publish,
                                                                 settings.subscribe))
    if problem:
        raise ValueError(problem)
    return settings


@dataclass(frozen=True)
class TaskQueueSettings:
    """A ``<task-queue NAME>`` section: where its tasks go and how they are run."""

    name: str = "default"
    backend: str = "local"
    concurrency: int = 1
    retries: int = 3
    retry_delay: float = 1.0
    retry_max_delay: float = 60.0
    task_user: str = ""
    push: str = DEFAULT_TASKS_PUSH
    pull: str = DEFAULT_TASKS_PULL
    #: nats: seconds NATS waits for a delivered task's acknowledgement before it delivers the
    #: task again (to any instance); a running task says "in progress" every third of it
    ack_wait: float = 30.0
    #: nats: deliveries of one task at most (each one an instance that took it and then died)
    max_deliver: int = 10
    #: nats: seconds a task may wait in its stream (and its id is kept as done: docs/tasks.md)
    max_age: float = 24 * 3600.0
    #: nats: copies of the task stream in a JetStream cluster (3 for a 3-node cluster)
    replicas: int = 1
    #: nats: seconds the Zope thread that committed tasks waits, before its response goes out,
    #: for NATS to store them (their PubAcks); 0: it does not wait
    publish_wait: float = 5.0

    def __post_init__(self):
        if self.backend not in TASK_BACKENDS:
            raise ValueError(f"task-queue backend must be one of {', '.join(TASK_BACKENDS)},"
                             f" not {self.backend!r}")
        if self.concurrency < 1:
            raise ValueError(f"task-queue {self.name}: concurrency must be at least 1")
        if self.retries < 0 or self.retry_delay < 0 or self.retry_max_delay < self.retry_delay:
            raise ValueError(f"task-queue {self.name}: retries and retry-delay must not be negative,"
                             " retry-max-delay not below retry-delay")
        if self.backend == "nats":
            if not NATS_NAME.fullmatch(self.name):
                raise ValueError(f"task-queue {self.name!r:.80}: a nats queue's name must be letters,"
                                 " digits, - and _ (it names the JetStream stream)")
            if self.ack_wait < 1 or self.max_deliver < 1 or self.max_age < 60 \
                    or not 1 <= self.replicas <= 5:
                raise ValueError(f"task-queue {self.name}: ack-wait must be at least 1s, max-deliver"
                                 " at least 1, max-age at least 1m, replicas 1 to 5")
            if not 0 <= self.publish_wait <= 60:
                raise ValueError(f"task-queue {self.name}: publish-wait must be 0s to 60s (a"
                                 " response waits that long for NATS)")


def task_queue_settings(section):
    return from_section(TaskQueueSettings, section, name=section.getSectionName())


def named_logger(section):
    """ZConfig's LoggerFactory, named after the section (``<logger access>`` -> "access")."""
    name = section.getSectionName()
    if not name:
        raise ValueError("a <logger> section needs a name, e.g. <logger access>")
    section.name = name
    return LoggerFactory(section)


class Choice:
    """Key datatype accepting one of a few words (any case); the configuration reference
    lists ``allowed`` from here, so the words are written once."""

    def __init__(self, what, allowed):
        self.what, self.allowed = what, allowed

    def __call__(self, value):
        value = value.strip().lower()
        if value not in self.allowed:
            raise ValueError(f"{self.what} must be one of {', '.join(self.allowed)}, not {value!r}")
        return value


#: Bounds of python-switch-interval, seconds: below 0.1 ms threads would trade the GIL more than
#: they run; above a second the reactor could wait that long for it.
SWITCH_INTERVAL_BOUNDS = (0.0001, 1.0)


def switch_interval(value):
    """python-switch-interval: "20ms", "0.02s" or "0.02" (seconds) -> seconds."""
    text = value.strip().lower()
    scale = 0.001 if text.endswith("ms") else 1.0
    number = text.removesuffix("ms").removesuffix("s").strip()
    try:
        seconds = float(number) * scale
    except ValueError:
        raise ValueError(f"python-switch-interval must be a duration such as 20ms or 0.02s,"
                         f" not {value!r}") from None
    low, high = SWITCH_INTERVAL_BOUNDS
    if not low <= seconds <= high:
        raise ValueError(f"python-switch-interval must be between {low * 1000:g}ms and"
                         f" {high * 1000:g}ms, not {value!r}")
    return seconds


reactor_name = Choice("reactor", REACTORS)
access_log_format = Choice("access-log-format", ACCESS_LOG_FORMATS)
log_format = Choice("log-format", LOG_FORMATS)
http1_parser = Choice("http1-parser", HTTP1_PARSERS)
bus_backend = Choice("event-bus backend", BUS_BACKENDS)
curve_choice = Choice("event-bus curve", CURVE_CHOICES)
task_backend = Choice("task-queue backend", TASK_BACKENDS)
