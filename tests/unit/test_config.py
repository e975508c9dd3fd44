"""txzserver.config.load: the shipped zope.conf template parses (like Zope's
test_load_config_template), and bad files give a ConfigError naming the file and line."""

import logging
import os
import sys

import pytest

from txzserver.app import apply_switch_interval
from txzserver.config import ConfigError, load
from txzserver.config.datatypes import Listener
from txzserver.zope.instance import render_config

HTTP_SECTION = """<http-server>
  address 8080
  # cleartext HTTP/2 (prior knowledge) next to HTTP/1.1
  h2c on
</http-server>"""


def write(instance, text, name="zope.conf"):
    path = instance / "etc" / name
    path.write_text(text)
    return path


@pytest.fixture
def restore_access_logger():
    logger = logging.getLogger("access")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield logger
    for handler in logger.handlers[:]:
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.handlers[:] = saved[0]
    logger.level, logger.propagate = saved[1], saved[2]


def test_load_config_template(instance):
    path = write(instance, render_config(str(instance)))
    opts, settings = load(str(path))
    assert settings.listeners == (Listener("http", "", 8080, 128, h2c=True),)
    assert settings.threads == 4
    assert settings.reactor == "auto"
    assert settings.access_log_format == "combined"
    assert settings.max_request_body_size == 1 << 30
    assert settings.max_header_size == 64 * 1024
    assert settings.idle_timeout == 60.0
    assert settings.max_connections == 1000
    assert settings.shutdown_timeout == 30.0
    assert settings.trusted_proxies == ()
    assert settings.webdav_source_port == 0
    root = opts.configroot
    assert root.instancehome == str(instance)
    assert root.clienthome == str(instance / "var")
    assert [db.name for db in root.databases] == ["main"]
    storage = root.databases[0].config.storage.config
    assert storage.blob_dir == str(instance / "var" / "blobstorage")


def test_load_config_template_with_zeo(instance):
    text = render_config(str(instance), address="127.0.0.1:9090", threads=2,
                         zeo="zeo.example.org:8100")
    opts, settings = load(str(write(instance, text)))
    assert settings.listeners == (Listener("http", "127.0.0.1", 9090, 128, h2c=True),)
    assert settings.threads == 2
    storage = opts.configroot.databases[0].config.storage.config
    assert storage.server[0].address == ("zeo.example.org", 8100)
    assert storage.blob_dir == str(instance / "var" / "blobcache")


def test_template_with_every_server_section(instance):
    (instance / "etc" / "server.crt").write_text("cert")
    (instance / "etc" / "server.key").write_text("key")
    text = render_config(str(instance)).replace(HTTP_SECTION, HTTP_SECTION + """
<https-server>
  address 127.0.0.1:8443
  certificate $INSTANCE/etc/server.crt
  private-key $INSTANCE/etc/server.key
</https-server>
<webdav-source-server>
  address 1980
</webdav-source-server>
trusted-proxy 127.0.0.1
trusted-proxy 10.1.2.3
access-log-format common
max-headers 50
request-spool-threshold 1MB
stream-chunk-size 64KB
reactor default
""")
    _, settings = load(str(write(instance, text)))
    http, https, webdav = settings.listeners
    assert https == Listener("https", "127.0.0.1", 8443, 128, http2=True,
                             certificate=str(instance / "etc" / "server.crt"),
                             private_key=str(instance / "etc" / "server.key"))
    assert webdav.kind == "webdav-source"
    assert settings.webdav_source_port == 1980
    assert settings.trusted_proxies == ("127.0.0.1", "10.1.2.3")
    assert settings.access_log_format == "common"
    assert settings.max_headers == 50
    assert settings.request_spool_threshold == 1 << 20
    assert settings.stream_chunk_size == 64 * 1024
    assert settings.reactor == "default"


def test_logger_access_creates_the_access_logger(instance, restore_access_logger):
    opts, _ = load(str(write(instance, render_config(str(instance)))))
    loggers = [factory() for factory in opts.configroot.loggers]
    assert [logger.name for logger in loggers] == ["access"]
    assert loggers[0] is logging.getLogger("access")
    assert loggers[0].propagate is False
    loggers[0].info("one line")
    for handler in loggers[0].handlers:
        handler.flush()
    assert (instance / "log" / "access.log").read_text() == "one line\n"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "nope.conf"))
    assert str(tmp_path / "nope.conf") in str(info.value)


def _error(instance, text):
    path = write(instance, text)
    with pytest.raises(ConfigError) as info:
        load(str(path))
    message = str(info.value)
    assert str(path) in message
    return message


def line_of(text, needle):
    return text.splitlines().index(needle) + 1


def test_unknown_key_names_file_and_line(instance):
    text = render_config(str(instance)).replace("server-threads 4", "server-threads 4\nbogus-key 1")
    message = _error(instance, text)
    assert "bogus-key" in message
    assert f"line {line_of(text, 'bogus-key 1')}" in message


def test_unknown_key_in_a_server_section(instance):
    text = render_config(str(instance)).replace("  h2c on", "  h2c on\n  colour blue")
    message = _error(instance, text)
    assert "colour" in message
    assert f"line {line_of(text, '  colour blue')}" in message


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "localhost:http"])
def test_bad_address(instance, address):
    text = render_config(str(instance), address=address)
    message = _error(instance, text)
    assert f"line {line_of(text, '  address ' + address)}" in message


def test_missing_certificate_file(instance):
    text = render_config(str(instance)) + """
<https-server>
  address 8443
  certificate $INSTANCE/etc/missing.crt
  private-key $INSTANCE/etc/missing.key
</https-server>
"""
    message = _error(instance, text)
    assert "missing.crt" in message
    assert f"line {line_of(text, '  certificate $INSTANCE/etc/missing.crt')}" in message


def test_bad_reactor_name(instance):
    text = render_config(str(instance)).replace("server-threads 4", "server-threads 4\nreactor gtk")
    message = _error(instance, text)
    assert "reactor must be one of" in message


def test_http1_parser_setting(instance):
    default = render_config(str(instance))
    assert load(str(write(instance, default)))[1].http1_parser == "llhttp"
    chosen = default.replace("server-threads 4", "server-threads 4\nhttp1-parser twisted")
    assert load(str(write(instance, chosen)))[1].http1_parser == "twisted"
    message = _error(instance, default.replace("server-threads 4", "server-threads 4\nhttp1-parser picohttp"))
    assert "http1-parser must be one of" in message and "llhttp" in message


def test_python_switch_interval(instance):
    """Not set: Python's own interval is left alone; "20ms", "0.02s" and "0.02" are 20 ms; out of
    0.1 ms to 1 s, or not a duration, is refused with the key's name."""
    default = render_config(str(instance))

    def with_interval(value):
        return default.replace("server-threads 4", f"server-threads 4\npython-switch-interval {value}")

    assert load(str(write(instance, default)))[1].python_switch_interval is None
    for value in ("20ms", "0.02s", "0.02", " 20MS"):
        loaded = load(str(write(instance, with_interval(value))))[1]
        assert loaded.python_switch_interval == pytest.approx(0.02)
    for wrong, reason in (("0.05ms", "between 0.1ms and 1000ms"), ("2s", "between 0.1ms and 1000ms"),
                          ("fast", "a duration such as 20ms")):
        message = _error(instance, with_interval(wrong))
        assert "python-switch-interval must be" in message and reason in message, message


def test_apply_switch_interval_sets_the_interpreter_and_reads_it_back():
    before = sys.getswitchinterval()
    try:
        assert apply_switch_interval(None) == before
        assert apply_switch_interval(0.02) == pytest.approx(0.02) == sys.getswitchinterval()
    finally:
        sys.setswitchinterval(before)


def test_logger_without_name(instance):
    message = _error(instance, render_config(str(instance)).replace("<logger access>", "<logger>"))
    assert "needs a name" in message
    assert "line -1" not in message


def test_no_server_section(instance):
    message = _error(instance, render_config(str(instance)).replace(HTTP_SECTION, ""))
    assert "no server section" in message


def test_server_threads_zero(instance):
    message = _error(instance, render_config(str(instance), threads=0))
    assert "server-threads must be at least 1" in message


def test_two_webdav_source_servers(instance):
    text = render_config(str(instance)) + "".join(
        f"\n<webdav-source-server>\n  address {port}\n</webdav-source-server>\n"
        for port in (1980, 1981))
    assert "only one <webdav-source-server>" in _error(instance, text)


def test_two_listeners_on_one_port(instance):
    text = render_config(str(instance)) + "\n<http-server>\n  address 8080\n</http-server>\n"
    assert "two server sections listen on *:8080" in _error(instance, text)


@pytest.fixture
def restore_zope_globals(monkeypatch):
    """Zope's root handler sets class attributes and the environment: undone afterwards."""
    from ZPublisher.HTTPRequest import HTTPRequest
    monkeypatch.setattr(HTTPRequest, "retry_max_count", HTTPRequest.retry_max_count)
    monkeypatch.setenv("TXZ_PROBE_SETTING", "off")  # recorded, so removed again afterwards


def test_zopes_root_handler_applies_conflict_retries_and_environment(instance,
                                                                     restore_zope_globals):
    """Our schema extends Zope's, whose root handler ZConfig does not inherit: without it
    max-conflict-retries and <environment> were silently ignored (no ConflictError retried)."""
    from Zope2.Startup.handlers import handleWSGIConfig
    from ZPublisher.HTTPRequest import HTTPRequest
    text = render_config(str(instance)) + (
        "\nmax-conflict-retries 5\n<environment>\n  TXZ_PROBE_SETTING on\n</environment>\n")
    opts, _ = load(str(write(instance, text)))
    handleWSGIConfig(opts.configroot, opts.confighandlers)
    assert HTTPRequest.retry_max_count == 5
    assert os.environ["TXZ_PROBE_SETTING"] == "on"


def _https_section(instance, tmp_path):
    """(a function of an <https-server>'s keys returning the zope.conf text with it, one
    returning the loaded https Listener)."""
    from tests.support.tls import make_certificates
    paths = make_certificates(tmp_path)
    base = render_config(str(instance))
    section = f"""
<https-server>
  address 127.0.0.1:8443
  certificate {paths["cert"]}
  private-key {paths["key"]}
%s</https-server>
"""

    def text(keys):
        return base + section % keys

    def https(keys):
        listeners = load(str(write(instance, text(keys))))[1].listeners
        return next(listener for listener in listeners if listener.kind == "https")

    return text, https


def test_http3_setting(instance, tmp_path):
    section, https = _https_section(instance, tmp_path)
    assert https("").http3 is False  # off unless asked for
    assert https("  http3 on\n").http3 is True
    text = section("  http3 maybe\n")
    message = _error(instance, text)
    assert "maybe" in message and f"line {line_of(text, '  http3 maybe')}" in message


def test_http3_max_datagram_size(instance, tmp_path):
    """The largest datagram path MTU discovery may raise HTTP/3 to: 16384 unless set,
    1200 (QUIC's smallest: no probing) to 65507 (UDP's largest over IPv4)."""
    section, https = _https_section(instance, tmp_path)
    assert https("  http3 on\n").http3_max_datagram_size == 16384
    assert https("  http3-max-datagram-size 1200\n").http3_max_datagram_size == 1200
    assert https("  http3-max-datagram-size 65507\n").http3_max_datagram_size == 65507
    for wrong in ("1199", "65508"):
        message = _error(instance, section(f"  http3-max-datagram-size {wrong}\n"))
        assert "http3-max-datagram-size must be 1200 to 65507" in message and wrong in message
