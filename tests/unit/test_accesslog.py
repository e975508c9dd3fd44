"""txzserver.server.accesslog: Common and Combined Log Format lines."""

import logging

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.testing import MemoryReactorClock
from twisted.web.test.requesthelper import DummyRequest

from txzserver.server import accesslog

NOW = 1700000000  # 14/Nov/2023:22:13:20 UTC
STAMP = "[14/Nov/2023:22:13:20 +0000]"


def finished(uri=b"/plone/front-page?x=1", method=b"GET", code=200, sent=1234, headers=(),
             user=None, peer=IPv4Address("TCP", "203.0.113.5", 40000)):
    request = DummyRequest([])
    request.uri = uri
    request.method = method
    request.clientproto = b"HTTP/1.1"
    request.code = code
    request.sentLength = sent
    request.client = peer
    if user is not None:
        request.remote_user = user
    for name, value in headers:
        request.requestHeaders.addRawHeader(name, value)
    return request


def test_common_format():
    line = accesslog.format_line(finished(), "common", now=NOW)
    assert line == f'203.0.113.5 - - {STAMP} "GET /plone/front-page?x=1 HTTP/1.1" 200 1234'


def test_combined_format():
    request = finished(headers=[(b"Referer", b"http://example.org/"),
                                (b"User-Agent", b"Mozilla/5.0 (X11)")], user="admin")
    line = accesslog.format_line(request, "combined", now=NOW)
    assert line == (f'203.0.113.5 - admin {STAMP} "GET /plone/front-page?x=1 HTTP/1.1" 200 1234'
                    ' "http://example.org/" "Mozilla/5.0 (X11)"')


def test_combined_without_referer_and_agent():
    line = accesslog.format_line(finished(sent=0, code=304), "combined", now=NOW)
    assert line.endswith('" 304 - "-" "-"')


def test_default_format_is_combined():
    assert accesslog.format_line(finished(), now=NOW).endswith(' "-" "-"')


def test_quotes_and_backslashes_are_escaped():
    request = finished(uri=b'/a"b\\c', headers=[(b"User-Agent", b'evil" 200 0 "x')])
    line = accesslog.format_line(request, "combined", now=NOW)
    assert '"GET /a\\"b\\\\c HTTP/1.1"' in line
    assert line.endswith('"evil\\" 200 0 \\"x"')


def test_latin1_bytes_are_kept():
    line = accesslog.format_line(finished(uri=b"/caf\xe9"), "common", now=NOW)
    assert '"GET /caf\u00e9 HTTP/1.1"' in line


def test_peer_without_host():
    line = accesslog.format_line(finished(peer=UNIXAddress(b"/tmp/sock")), "common", now=NOW)
    assert line.startswith("- - - [")


def _access_log(**kwargs):
    reactor = MemoryReactorClock()
    return reactor, accesslog.AccessLog(reactor, "common", **kwargs)


def test_access_lines_are_written_within_the_flush_interval(caplog):
    reactor, log = _access_log()
    with caplog.at_level(logging.INFO, logger="access"):
        log.add(finished())
        log.add(finished(uri=b"/second"))
        assert [r for r in caplog.records if r.name == "access"] == []
        reactor.advance(accesslog.FLUSH_INTERVAL)
    records = [r for r in caplog.records if r.name == "access"]
    assert len(records) == 2
    assert records[0].levelno == logging.INFO
    assert '"GET /plone/front-page?x=1 HTTP/1.1" 200 1234' in records[0].getMessage()
    assert '"GET /second HTTP/1.1"' in records[1].getMessage()
    assert not reactor.getDelayedCalls()


def test_access_line_has_the_time_the_response_finished(caplog, monkeypatch):
    reactor, log = _access_log()
    monkeypatch.setattr(accesslog.time, "time", lambda: NOW)
    with caplog.at_level(logging.INFO, logger="access"):
        log.add(finished())
        monkeypatch.setattr(accesslog.time, "time", lambda: NOW + 3600)
        reactor.advance(accesslog.FLUSH_INTERVAL)
    assert STAMP in caplog.records[-1].getMessage()


def test_a_full_batch_is_written_at_once(caplog):
    reactor, log = _access_log()
    with caplog.at_level(logging.INFO, logger="access"):
        for _ in range(accesslog.MAX_PENDING):
            log.add(finished())
    assert len([r for r in caplog.records if r.name == "access"]) == accesslog.MAX_PENDING
    assert not reactor.getDelayedCalls()


def test_pending_lines_are_written_at_shutdown(caplog):
    reactor, log = _access_log()
    with caplog.at_level(logging.INFO, logger="access"):
        log.add(finished())
        for trigger, args, kwargs in reactor.triggers["after"]["shutdown"]:
            trigger(*args, **kwargs)
    assert len([r for r in caplog.records if r.name == "access"]) == 1


class CountingFileHandler(logging.FileHandler):
    flushes = 0

    def flush(self):
        self.flushes += 1
        super().flush()


def test_a_batch_flushes_each_file_once(tmp_path):
    """Lines reach the file together, with one flush per batch (emit flushes every line)."""
    logger = logging.getLogger("access")
    handler = CountingFileHandler(tmp_path / "access.log")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        reactor, log = _access_log()
        for _ in range(5):
            log.add(finished())
        reactor.advance(accesslog.FLUSH_INTERVAL)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
    assert (tmp_path / "access.log").read_text().count("\n") == 5
    assert handler.flushes == 1 + 1  # the batch's, and close()'s
    assert "flush" not in vars(handler)


def test_nothing_is_kept_when_the_access_logger_is_off(monkeypatch):
    logger = logging.getLogger("access")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    monkeypatch.setattr(accesslog, "format_line", lambda *a: 1 / 0)
    reactor, log = _access_log()
    log.add(finished())
    reactor.advance(accesslog.FLUSH_INTERVAL)
    assert not reactor.getDelayedCalls()
