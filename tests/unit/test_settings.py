"""txzserver.config.settings.ServerSettings: validation, and one default in one place."""

import dataclasses
from types import SimpleNamespace

import pytest

from txzserver.config import load
from txzserver.config.datatypes import Listener
from txzserver.config.settings import ServerSettings, SettingsError

HTTP = Listener("http", "", 8080)


def settings(**overrides):
    values = {"listeners": (HTTP,)}
    values.update(overrides)
    return ServerSettings(**values)


def test_valid_settings_are_frozen():
    s = settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.threads = 8


def test_no_server_section():
    with pytest.raises(SettingsError, match="no server section"):
        settings(listeners=())


@pytest.mark.parametrize("key, value, message", [
    ("threads", 0, "server-threads must be at least 1, not 0"),
    ("max_connections", 0, "max-connections must be at least 1"),
    ("header_timeout", 0, "header-timeout must be positive"),
    ("max_header_size", 100, "max-header-size must be at least 1KB"),
    ("stream_chunk_size", 10, "stream-chunk-size must be at least 1KB"),
])
def test_bad_values(key, value, message):
    with pytest.raises(SettingsError, match=message):
        settings(**{key: value})


def test_two_webdav_source_servers():
    with pytest.raises(SettingsError, match="only one <webdav-source-server>"):
        settings(listeners=(HTTP, Listener("webdav-source", "", 1980),
                            Listener("webdav-source", "", 1981)))


def test_two_listeners_on_one_address():
    with pytest.raises(SettingsError, match=r"listen on (\*|0\.0\.0\.0):8080"):
        settings(listeners=(HTTP, Listener("https", "0.0.0.0", 8080)))
    with pytest.raises(SettingsError, match="listen on 127.0.0.1:8080"):
        settings(listeners=(Listener("http", "127.0.0.1", 8080),
                            Listener("http", "127.0.0.1", 8080)))


def test_same_port_on_other_interfaces_and_port_zero():
    settings(listeners=(Listener("http", "127.0.0.1", 8080), Listener("http", "::1", 8080)))
    settings(listeners=(Listener("http", "127.0.0.1", 0), Listener("http", "127.0.0.1", 0)))


def test_webdav_source_port():
    assert settings().webdav_source_port == 0
    s = settings(listeners=(HTTP, Listener("webdav-source", "", 1980)))
    assert s.webdav_source_port == 1980


def test_listener_interface():
    assert HTTP.interface == "0.0.0.0"
    assert Listener("http", "::1", 80).interface == "::1"


def test_from_zconfig():
    root = SimpleNamespace(
        servers=[HTTP], server_threads=3, reactor="asyncio", access_log_format="common",
        max_request_body_size=10, request_spool_threshold=5, max_spool_size=30,
        max_anonymous_body_size=8, max_header_size=2048, max_headers=20, idle_timeout=7,
        header_timeout=3, max_connections=9, shutdown_timeout=4, shutdown_delay=2,
        stream_chunk_size=4096, trusted_proxies=None, trusted_proxy_networks=None, websocket=None,
        event_bus=None, health=None, metrics=None, log_format="json",
        instance_name="alpha", max_publishing_per_connection=2, http2_max_concurrent_streams=50,
        http2_max_reset_burst=30, http2_reset_rate=3, task_queues=None, http2_max_control_frames=40,
        http2_control_frame_rate=4, http1_parser="llhttp", python_switch_interval=0.02)
    s = ServerSettings.from_zconfig(root)
    assert s == ServerSettings(
        (HTTP,), threads=3, reactor="asyncio", access_log_format="common", max_request_body_size=10,
        request_spool_threshold=5, max_spool_size=30, max_anonymous_body_size=8,
        max_header_size=2048, max_headers=20, idle_timeout=7.0,
        header_timeout=3.0, max_connections=9, shutdown_timeout=4.0, shutdown_delay=2.0,
        stream_chunk_size=4096,
        trusted_proxies=(),
        max_publishing_per_connection=2, http2_max_concurrent_streams=50, http2_max_reset_burst=30,
        http2_reset_rate=3.0, http2_max_control_frames=40, http2_control_frame_rate=4.0,
        instance_name="alpha", log_format="json", http1_parser="llhttp",
        python_switch_interval=0.02)
    assert isinstance(s.http2_reset_rate, float)
    assert isinstance(s.idle_timeout, float)
    assert isinstance(s.header_timeout, float)
    assert isinstance(s.shutdown_delay, float)


def test_schema_defaults_equal_class_defaults(tmp_path):
    """The defaults of zope.conf keys and of ServerSettings are the same numbers."""
    conf = tmp_path / "zope.conf"
    conf.write_text(f"instancehome {tmp_path}\n<http-server>\n  address 8080\n</http-server>\n"
                    "<zodb_db main>\n  <mappingstorage/>\n  mount-point /\n</zodb_db>\n")
    _, loaded = load(str(conf))
    assert loaded == ServerSettings(listeners=loaded.listeners)


def test_unknown_paste_option_is_rejected():
    with pytest.raises(ValueError, match="unknown txzserver option.*thraeds"):
        ServerSettings.from_paste(listen="127.0.0.1:8080", thraeds="4")
    settings = ServerSettings.from_paste(listen="127.0.0.1:8080 [::1]:8081", threads="3", h2c="off")
    assert [(x.host, x.port, x.h2c) for x in settings.listeners] == [("127.0.0.1", 8080, False),
                                                                     ("::1", 8081, False)]
    assert settings.threads == 3


def test_paste_options_reach_the_new_limits():
    settings = ServerSettings.from_paste(http2_max_reset_burst="20", http2_reset_rate="2.5",
                                         max_publishing_per_connection="3")
    assert (settings.http2_max_reset_burst, settings.http2_reset_rate, settings.publish_share) == (20, 2.5, 3)
    assert ServerSettings.from_paste(threads="6").publish_share == 6


def test_python_switch_interval_from_paste():
    assert ServerSettings.from_paste().python_switch_interval is None
    assert ServerSettings.from_paste(python_switch_interval="20ms").python_switch_interval == 0.02
    with pytest.raises(ValueError, match="python_switch_interval.*between 0.1ms and 1000ms"):
        ServerSettings.from_paste(python_switch_interval="2s")


def test_header_timeout_from_zope_conf_and_paste(tmp_path):
    conf = tmp_path / "zope.conf"
    conf.write_text(f"instancehome {tmp_path}\n<http-server>\n  address 8080\n</http-server>\n"
                    "header-timeout 3s\n"
                    "<zodb_db main>\n  <mappingstorage/>\n  mount-point /\n</zodb_db>\n")
    assert load(str(conf))[1].header_timeout == 3.0
    assert ServerSettings.from_paste(header_timeout="2.5").header_timeout == 2.5
    assert settings().header_timeout < settings().idle_timeout


def test_trusted_proxy_networks_join_the_addresses(tmp_path):
    conf = tmp_path / "zope.conf"
    conf.write_text(f"instancehome {tmp_path}\n<http-server>\n  address 8080\n</http-server>\n"
                    "trusted-proxy 127.0.0.1\ntrusted-proxy-network 10.0.0.0/8\n"
                    "trusted-proxy-network\n"  # empty, as $(TRUSTED_PROXY_NETWORK) unset
                    "<zodb_db main>\n  <mappingstorage/>\n  mount-point /\n</zodb_db>\n")
    _, loaded = load(str(conf))
    assert loaded.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")


def test_a_bad_trusted_proxy_network_names_the_line(tmp_path):
    from txzserver.config import ConfigError
    conf = tmp_path / "zope.conf"
    conf.write_text(f"instancehome {tmp_path}\n<http-server>\n  address 8080\n</http-server>\n"
                    "trusted-proxy-network 10.0.0.0/33\n"
                    "<zodb_db main>\n  <mappingstorage/>\n  mount-point /\n</zodb_db>\n")
    with pytest.raises(ConfigError, match=r"trusted-proxy-network must be a network.*\(line 5"):
        load(str(conf))
