"""ZConfig datatypes for the server sections: each returns a frozen listener description."""

from dataclasses import dataclass

REACTORS = ("auto", "uvloop", "asyncio", "default")
ACCESS_LOG_FORMATS = ("common", "combined")


@dataclass(frozen=True)
class Listener:
    """One socket to listen on; ``kind`` is "http", "https" or "webdav-source"."""

    kind: str
    host: str
    port: int
    backlog: int = 128
    h2c: bool = False
    http2: bool = False
    certificate: str | None = None
    private_key: str | None = None

    @property
    def interface(self) -> str:
        """The address to bind: ZConfig gives "" for "all interfaces"."""
        return self.host or "0.0.0.0"


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
    return Listener(
        "https", host, port, section.backlog, http2=section.http2,
        certificate=section.certificate, private_key=section.private_key,
    )


def webdav_source_server(section):
    host, port = _address(section)
    return Listener("webdav-source", host, port, section.backlog)


def named_logger(section):
    """ZConfig's LoggerFactory, named after the section (``<logger access>`` -> "access")."""
    from ZConfig.components.logger.logger import LoggerFactory
    name = section.getSectionName()
    if not name:
        raise ValueError("a <logger> section needs a name, e.g. <logger access>")
    section.name = name
    return LoggerFactory(section)


def _choice(value, allowed, what):
    value = value.strip().lower()
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def reactor_name(value):
    return _choice(value, REACTORS, "reactor")


def access_log_format(value):
    return _choice(value, ACCESS_LOG_FORMATS, "access-log-format")
