"""The server's view of zope.conf: one frozen, validated object built from the ZConfig root."""

from dataclasses import dataclass

import socket

from .datatypes import EventBusSettings, Listener, WebSocketSettings


class SettingsError(ValueError):
    """zope.conf parsed, but its server settings do not make sense together."""


@dataclass(frozen=True)
class ServerSettings:
    listeners: tuple[Listener, ...]
    threads: int = 4
    reactor: str = "auto"
    access_log_format: str = "combined"
    max_request_body_size: int = 1 << 30
    request_spool_threshold: int = 512 * 1024
    max_header_size: int = 64 * 1024
    max_headers: int = 200
    idle_timeout: float = 60.0
    max_connections: int = 1000
    shutdown_timeout: float = 30.0
    stream_chunk_size: int = 256 * 1024
    trusted_proxies: tuple[str, ...] = ()
    websocket: WebSocketSettings | None = None
    event_bus: EventBusSettings | None = None
    instance_name: str = ""

    def __post_init__(self):
        if not self.instance_name:
            object.__setattr__(self, "instance_name", socket.gethostname())
        if not self.listeners:
            raise SettingsError("no server section: add at least one <http-server> or <https-server>")
        if self.threads < 1:
            raise SettingsError(f"server-threads must be at least 1, not {self.threads}")
        if self.max_connections < 1:
            raise SettingsError(f"max-connections must be at least 1, not {self.max_connections}")
        if self.max_header_size < 1024:
            raise SettingsError(f"max-header-size must be at least 1KB, not {self.max_header_size}")
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

    @property
    def webdav_source_port(self) -> int:
        return next((s.port for s in self.listeners if s.kind == "webdav-source"), 0)

    @classmethod
    def from_zconfig(cls, root):
        return cls(
            listeners=tuple(root.servers),
            threads=root.server_threads,
            reactor=root.reactor,
            access_log_format=root.access_log_format,
            max_request_body_size=root.max_request_body_size,
            request_spool_threshold=root.request_spool_threshold,
            max_header_size=root.max_header_size,
            max_headers=root.max_headers,
            idle_timeout=float(root.idle_timeout),
            max_connections=root.max_connections,
            shutdown_timeout=float(root.shutdown_timeout),
            stream_chunk_size=root.stream_chunk_size,
            trusted_proxies=tuple(root.trusted_proxies or ()),
            websocket=root.websocket,
            event_bus=root.event_bus,
            instance_name=root.instance_name,
        )
