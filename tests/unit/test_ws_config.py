"""<websocket>, <event-bus> and instance-name in zope.conf: parsed into WebSocketSettings and
EventBusSettings, bad values rejected with a ConfigError naming the file and line."""

import socket

import pytest

from txzserver.config import load
from txzserver.config.datatypes import EventBusSettings, WebSocketSettings
from txzserver.config.settings import ServerSettings

from .helpers import conf, error, line_of

WEBSOCKET = """
<websocket>
  path /live/ws/
  site intranet
  allowed-origin https://www.example.com
  allowed-origin HTTPS://Admin.Example.com:8443/
  max-connections 500
  max-message-size 16KB
  ping-interval 10s
  ping-timeout 5s
</websocket>
"""

EVENT_BUS = """
<event-bus>
  publish ipc:///run/txzserver/publish.sock
  subscribe tcp://broker:5560
  curve off
</event-bus>
"""


def test_sections_absent_by_default(instance):
    _, settings = load(str(conf(instance)[0]))
    assert settings.websocket is None
    assert settings.event_bus is None


def test_websocket_and_event_bus_sections(instance):
    _, settings = load(str(conf(instance, WEBSOCKET + EVENT_BUS + "instance-name backend-1\n")[0]))
    assert settings.websocket == WebSocketSettings(
        path="/live/ws", site="intranet",
        allowed_origins=("https://www.example.com", "https://admin.example.com:8443"),
        max_connections=500, max_message_size=16 * 1024, ping_interval=10.0, ping_timeout=5.0)
    assert settings.event_bus == EventBusSettings(publish="ipc:///run/txzserver/publish.sock",
                                                  subscribe="tcp://broker:5560", curve="off")
    assert settings.instance_name == "backend-1"


def test_websocket_defaults(instance):
    _, settings = load(str(conf(instance, "<websocket>\n</websocket>\n")[0]))
    assert settings.websocket == WebSocketSettings()
    ws = settings.websocket
    assert (ws.path, ws.site, ws.allowed_origins) == ("/ws", "Plone", ())
    assert (ws.max_connections, ws.max_message_size) == (10000, 64 * 1024)
    assert (ws.ping_interval, ws.ping_timeout) == (30.0, 20.0)


def test_ping_interval_zero_disables_pings(instance):
    _, settings = load(str(conf(instance, "<websocket>\n  ping-interval 0\n</websocket>\n")[0]))
    assert settings.websocket.ping_interval == 0.0


def test_instance_name_defaults_to_the_host_name(instance):
    _, settings = load(str(conf(instance)[0]))
    assert settings.instance_name == socket.gethostname()
    assert ServerSettings(listeners=settings.listeners).instance_name == socket.gethostname()
    assert ServerSettings(listeners=settings.listeners, instance_name="x").instance_name == "x"


@pytest.mark.parametrize("value", ["ws", "/", "//ws", "/a//ws"])
def test_bad_websocket_path(instance, value):
    message, text = error(instance, f"<websocket>\n  path {value}\n</websocket>\n")
    assert "websocket path must look like /ws" in message
    assert f"line {line_of(text, f'  path {value}')}" in message


@pytest.mark.parametrize("origin", ["example.org", "www.example.com:443"])
def test_bad_allowed_origin(instance, origin):
    message, text = error(instance, f"<websocket>\n  allowed-origin {origin}\n</websocket>\n")
    assert "allowed-origin must be scheme://host[:port]" in message
    assert origin in message
    assert f"line {line_of(text, f'  allowed-origin {origin}')}" in message


def test_bad_max_connections(instance):
    message, _ = error(instance, "<websocket>\n  max-connections 0\n</websocket>\n")
    assert "max-connections must be at least 1" in message


def test_unknown_key_in_websocket(instance):
    message, text = error(instance, "<websocket>\n  colour blue\n</websocket>\n")
    assert "colour" in message
    assert f"line {line_of(text, '  colour blue')}" in message


@pytest.mark.parametrize("endpoint", ["udp://broker:5559", "broker:5559", "/run/publish.sock",
                                      "http://broker:5559"])
def test_bad_event_bus_endpoint(instance, endpoint):
    message, text = error(instance, f"<event-bus>\n  publish tcp://broker:5559\n"
                                    f"  subscribe {endpoint}\n</event-bus>\n")
    assert "event-bus endpoint must be an ipc://, tcp:// or inproc:// endpoint" in message
    assert endpoint in message
    assert f"line {line_of(text, f'  subscribe {endpoint}')}" in message


def test_event_bus_endpoints_default_to_the_brokers(instance):
    from txzserver.bus import DEFAULT_PUBLISH, DEFAULT_SUBSCRIBE
    path, _ = conf(instance, "<event-bus>\n</event-bus>\n")
    _, settings = load(str(path))
    assert (settings.event_bus.publish, settings.event_bus.subscribe) == (DEFAULT_PUBLISH,
                                                                          DEFAULT_SUBSCRIBE)
    path, _ = conf(instance, "<event-bus>\n  publish tcp://broker:5559\n  curve off\n</event-bus>\n")
    _, settings = load(str(path))
    assert (settings.event_bus.publish, settings.event_bus.subscribe) == ("tcp://broker:5559",
                                                                          DEFAULT_SUBSCRIBE)


def test_settings_reject_bad_values_directly():
    with pytest.raises(ValueError):
        WebSocketSettings(path="ws")
    with pytest.raises(ValueError):
        WebSocketSettings(allowed_origins=("example.org",))
    with pytest.raises(ValueError):
        EventBusSettings(publish="tcp://b:1", subscribe="b:2")
    assert EventBusSettings(publish="inproc://a", subscribe="inproc://b").publish == "inproc://a"


def test_principal_cache_settings(instance):
    _, settings = load(str(conf(instance, "<websocket>\n  principal-cache-ttl 5m\n"
                                          "  principal-cache-size 100\n</websocket>\n")[0]))
    assert settings.websocket.principal_cache_ttl == 300.0
    assert settings.websocket.principal_cache_size == 100
    assert WebSocketSettings().principal_cache_ttl == 60.0  # the default: one minute
    _, settings = load(str(conf(instance, "<websocket>\n  principal-cache-ttl 0\n</websocket>\n")[0]))
    assert settings.websocket.principal_cache_ttl == 0.0  # off: every handshake asks Zope


def test_principal_cache_headers(instance):
    assert WebSocketSettings().principal_cache_headers == ()  # the default: none
    _, settings = load(str(conf(instance, "<websocket>\n  principal-cache-header X-Remote-User\n"
                                          "  principal-cache-header X-Groups\n</websocket>\n")[0]))
    assert settings.websocket.principal_cache_headers == ("X-Remote-User", "X-Groups")


def test_negative_principal_cache_size_is_refused(instance):
    message, _ = error(instance, "<websocket>\n  principal-cache-size -1\n</websocket>\n")
    assert "principal-cache" in message
