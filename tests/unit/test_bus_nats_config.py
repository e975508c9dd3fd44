"""<event-bus> with backend nats: parsed into EventBusSettings (defaults, several servers, the
files), misconfiguration rejected with a ConfigError naming the file (and line); the nats-py
connect options made from it; the NatsLoop that runs nats-py beside the reactor."""

import asyncio
import ssl
import threading

import pytest

from txzserver.bus.natsconn import NatsLoop, connect_options
from txzserver.config import load
from txzserver.config.datatypes import EventBusSettings

from .helpers import conf, error, line_of


def bus(instance, body):
    path, _ = conf(instance, f"<event-bus>\n{body}</event-bus>\n")
    return load(str(path))[1].event_bus


def test_zmq_stays_the_default(instance):
    settings = bus(instance, "  curve off\n")
    assert settings.backend == "zmq"
    assert settings.nats_servers == ()


def test_nats_backend_with_defaults(instance):
    settings = bus(instance, "  backend nats\n  nats-server nats://127.0.0.1:4222\n")
    assert settings.backend == "nats"
    assert settings.nats_servers == ("nats://127.0.0.1:4222",)
    assert (settings.stream, settings.max_age, settings.max_bytes) == (
        "TXZSERVER_EVENTS", 24 * 3600.0, 1024 ** 3)
    assert (settings.nats_credentials, settings.nats_nkey, settings.nats_tls_ca) == ("", "", "")


def test_nats_backend_needs_no_curve_keys(instance):
    """The zmq endpoints' tcp-needs-keys rule does not apply to a nats bus."""
    settings = bus(instance, "  backend nats\n  subscribe tcp://broker:5560\n"
                             "  nats-server nats://n1:4222\n")
    assert settings.backend == "nats"


def test_nats_cluster_files_and_limits(instance, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    creds = tmp_path / "app.creds"
    creds.write_text("x")
    settings = bus(instance, f"  backend NATS\n  nats-server nats://n1:4222\n"
                             f"  nats-server tls://n2.example.com:4222\n  nats-server nats://n3:4222\n"
                             f"  nats-credentials {creds}\n  nats-tls-ca {ca}\n"
                             f"  stream SITE_EVENTS\n  max-age 2h\n  max-bytes 10MB\n")
    assert settings.nats_servers == ("nats://n1:4222", "tls://n2.example.com:4222",
                                     "nats://n3:4222")
    assert settings.nats_credentials == str(creds)
    assert settings.nats_tls_ca == str(ca)
    assert (settings.stream, settings.max_age, settings.max_bytes) == (
        "SITE_EVENTS", 7200.0, 10 * 1024 * 1024)


def test_nats_backend_without_server_is_a_clear_error(instance):
    message, _ = error(instance, "<event-bus>\n  backend nats\n</event-bus>\n")
    assert "event-bus backend nats needs at least one nats-server" in message


def test_unknown_backend(instance):
    message, text = error(instance, "<event-bus>\n  backend kafka\n</event-bus>\n")
    assert "event-bus backend must be one of zmq, nats, not 'kafka'" in message
    assert f"line {line_of(text, '  backend kafka')}" in message


@pytest.mark.parametrize("url", ["http://n1:4222", "n1:4222", "nats://", "tcp://n1:4222"])
def test_bad_server_url(instance, url):
    message, text = error(instance, f"<event-bus>\n  backend nats\n  nats-server {url}\n"
                                    "</event-bus>\n")
    assert "nats-server must be a nats:// or tls:// URL" in message
    assert f"line {line_of(text, f'  nats-server {url}')}" in message


@pytest.mark.parametrize("key", ["nats-credentials", "nats-nkey", "nats-tls-ca"])
def test_missing_files_are_named(instance, tmp_path, key):
    missing = tmp_path / "nowhere" / "file"
    message, _ = error(instance, f"<event-bus>\n  backend nats\n  nats-server nats://n1:4222\n"
                                 f"  {key} {missing}\n</event-bus>\n")
    assert f"event-bus {key}: no such file {str(missing)!r}" in message


def test_credentials_and_nkey_exclude_each_other(tmp_path):
    seed = tmp_path / "seed"
    seed.write_text("SU")
    with pytest.raises(ValueError, match="nats-credentials or nats-nkey, not both"):
        EventBusSettings("ipc:///a", "ipc:///b", backend="nats", nats_servers=("nats://n:1",),
                         nats_credentials=str(seed), nats_nkey=str(seed))


@pytest.mark.parametrize("stream", ["TXZ.EVENTS", "a b", "EVENTS>", ""])
def test_bad_stream_name(instance, stream):
    with pytest.raises(ValueError, match="stream must be letters, digits"):
        EventBusSettings("ipc:///a", "ipc:///b", backend="nats", nats_servers=("nats://n:1",),
                         stream=stream)


def test_tiny_limits_refused():
    with pytest.raises(ValueError, match="max-age must be above 0"):
        EventBusSettings("ipc:///a", "ipc:///b", backend="nats", nats_servers=("nats://n:1",),
                         max_bytes=10)


def nats_bus(**fields):
    return EventBusSettings("ipc:///a", "ipc:///b", backend="nats", **fields)


def test_connect_options_reconnect_for_ever():
    options = connect_options(nats_bus(nats_servers=("nats://a:1", "nats://b:2")), name="i1")
    assert options["servers"] == ["nats://a:1", "nats://b:2"]
    assert options["name"] == "i1"
    assert options["allow_reconnect"] is True
    assert options["max_reconnect_attempts"] == -1
    assert "tls" not in options and "user_credentials" not in options
    assert "nkeys_seed" not in options


def test_connect_options_files(tmp_path):
    seed = tmp_path / "seed"
    seed.write_text("SU")
    options = connect_options(nats_bus(nats_servers=("nats://a:1",), nats_nkey=str(seed)))
    assert options["nkeys_seed"] == str(seed)
    creds = tmp_path / "app.creds"
    creds.write_text("x")
    options = connect_options(nats_bus(nats_servers=("nats://a:1",), nats_credentials=str(creds)))
    assert options["user_credentials"] == str(creds)


def test_connect_options_tls_url_uses_system_cas():
    options = connect_options(nats_bus(nats_servers=("tls://a:1",)))
    assert isinstance(options["tls"], ssl.SSLContext)
    assert options["tls"].verify_mode == ssl.CERT_REQUIRED


def test_connect_options_tls_ca(tmp_path):
    from tests.support.tls import make_certificates  # a real CA file: the context loads it
    ca = make_certificates(tmp_path)["ca"]
    options = connect_options(nats_bus(nats_servers=("nats://a:1",), nats_tls_ca=str(ca)))
    assert options["tls"].cert_store_stats()["x509_ca"] == 1


def test_nats_loop_runs_coroutines_in_its_thread():
    loop = NatsLoop(name="test-nats")
    try:
        async def where():
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert loop.run(where()).result(5) == "test-nats"
        seen = threading.Event()
        loop.call(seen.set)
        assert seen.wait(5)
    finally:
        loop.stop()
    assert not loop.running


def test_nats_loop_stop_cancels_what_runs():
    loop = NatsLoop()
    future = loop.run(asyncio.sleep(3600))
    loop.stop()
    assert future.cancelled()
    assert not loop.thread.is_alive()


def test_shared_loop_is_one_per_process_and_restarts_after_stop():
    first = NatsLoop.instance()
    assert NatsLoop.instance() is first
    first.stop()
    second = NatsLoop.instance()
    try:
        assert second is not first and second.running
    finally:
        second.stop()


def test_to_reactor_uses_call_from_thread():
    from twisted.internet.testing import MemoryReactorClock
    calls = []

    class Reactor(MemoryReactorClock):
        def callFromThread(self, function, *args):
            calls.append((function, args))

    NatsLoop.to_reactor(Reactor(), print, 1)
    assert calls == [(print, (1,))]


def test_server_urls_are_shown_without_their_password():
    """Kubernetes and compose put the NATS password in the URL: logs and /healthz show host:port."""
    from txzserver.bus.natsconn import shown
    assert shown(["nats://txzserver:s3cret@nats-0.nats-cluster:4222", "tls://nats-1:4222"]) == \
        "nats://nats-0.nats-cluster:4222, tls://nats-1:4222"
    assert shown("nats://user:pw@127.0.0.1") == "nats://127.0.0.1"
    assert "s3cret" not in shown("nats://txzserver:s3cret@host:4222")
