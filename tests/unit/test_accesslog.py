"""txzserver.server.accesslog: Common and Combined Log Format lines."""

import logging

from twisted.internet.address import IPv4Address, UNIXAddress
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


def test_log_request_writes_to_the_access_logger(caplog):
    with caplog.at_level(logging.INFO, logger="access"):
        accesslog.log_request(finished(), "common")
    records = [r for r in caplog.records if r.name == "access"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    assert '"GET /plone/front-page?x=1 HTTP/1.1" 200 1234' in records[0].getMessage()


def test_log_request_skips_formatting_when_disabled(monkeypatch):
    logger = logging.getLogger("access")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    monkeypatch.setattr(accesslog, "format_line", lambda *a: 1 / 0)
    accesslog.log_request(finished(), "common")
