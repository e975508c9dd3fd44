"""``log-format json``: the formatter (txzserver.jsonlog), the access fields a real ZopeSite
puts on its records, and a zope.conf's event log and access log written as JSON lines by
zope.startup.configure_logging (real ZConfig handlers writing real files)."""

import json
import logging
import sys
from datetime import datetime

import pytest
from twisted.web.resource import Resource

from txzserver.config import load
from txzserver.jsonlog import JsonFormatter
from txzserver.server.accesslog import format_line
from txzserver.zope.instance import render_config
from txzserver.zope.startup import configure_logging

from .helpers import connect, feed, make_site
from .test_accesslog import NOW, STAMP, finished

ACCESS_FIELDS = {"time", "level", "logger", "message", "client", "user", "method", "path",
                 "status", "bytes", "duration", "protocol", "user_agent", "referer"}


class Page(Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(404 if request.path == b"/missing" else 200)
        return b"hello"


def record(msg="hello %s", args=("world",), **extra):
    rec = logging.LogRecord("txzserver.test", logging.WARNING, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_a_record_is_one_json_object():
    line = JsonFormatter().format(record())
    assert "\n" not in line
    data = json.loads(line)
    assert data == {"time": data["time"], "level": "WARNING", "logger": "txzserver.test",
                    "message": "hello world"}
    stamp = datetime.fromisoformat(data["time"])
    assert stamp.utcoffset().total_seconds() == 0
    assert len(data["time"]) == len("2026-12-02T01:30:00.123+00:00")


def test_fields_are_added_but_cannot_replace_the_base_ones():
    data = json.loads(JsonFormatter().format(record(json_fields={
        "status": 200, "message": "forged", "level": "DEBUG", "path": "/a\nb"})))
    assert (data["message"], data["level"], data["status"], data["path"]) == (
        "hello world", "WARNING", 200, "/a\nb")


def test_exceptions_are_one_field():
    try:
        1 / 0
    except ZeroDivisionError:
        rec = record(exc_info=sys.exc_info())
    data = json.loads(JsonFormatter().format(rec))
    assert "ZeroDivisionError" in data["exception"]
    assert data["exception"].startswith("Traceback")


def test_access_records_carry_the_request_fields(caplog):
    site = make_site(Page(), log_format="json", h2c=True)
    protocol, _ = connect(site)
    with caplog.at_level(logging.INFO, logger="access"):
        feed(protocol, b"GET /missing?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: probe/1\r\n"
                       b"Referer: http://example.org/\r\n\r\n")
        site.reactor.advance(1)  # access lines are written in batches
    (rec,) = [r for r in caplog.records if r.name == "access"]
    fields = rec.json_fields
    assert fields["client"] == "192.0.2.7"
    assert (fields["method"], fields["path"], fields["status"], fields["bytes"]) == (
        "GET", "/missing?q=1", 404, 5)
    assert (fields["protocol"], fields["user_agent"], fields["referer"]) == (
        "http/1.1", "probe/1", "http://example.org/")
    assert fields["user"] is None and 0 <= fields["duration"] < 5
    data = json.loads(JsonFormatter().format(rec))
    assert set(data) == ACCESS_FIELDS
    assert data["message"] == rec.getMessage()
    assert '"GET /missing?q=1 HTTP/1.1" 404 5 "http://example.org/" "probe/1"' in data["message"]


def test_text_mode_adds_nothing_and_keeps_the_line(caplog):
    site = make_site(Page())
    protocol, _ = connect(site)
    with caplog.at_level(logging.INFO, logger="access"):
        feed(protocol, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        site.reactor.advance(1)
    (rec,) = [r for r in caplog.records if r.name == "access"]
    assert not hasattr(rec, "json_fields")
    assert rec.getMessage().endswith('"GET /a HTTP/1.1" 200 5 "-" "-"')


def test_format_line_is_unchanged_by_the_json_option():
    assert format_line(finished(), "common", now=NOW) == (
        f'203.0.113.5 - - {STAMP} "GET /plone/front-page?x=1 HTTP/1.1" 200 1234')


@pytest.fixture
def saved_logging():
    """configure_logging changes the root and access loggers: put them back afterwards."""
    saved = {}
    for name in (None, "access"):
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.level, logger.propagate)
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        logger.handlers[:] = handlers
        logger.level, logger.propagate = level, propagate


def test_zope_conf_log_format_json_writes_json_event_and_access_logs(tmp_path, saved_logging):
    for sub in ("etc", "var", "log"):
        (tmp_path / sub).mkdir()
    text = render_config(str(tmp_path)).replace("# log-format json", "log-format json")
    path = tmp_path / "etc" / "zope.conf"
    path.write_text(text)
    opts, settings = load(str(path))
    assert settings.log_format == "json"
    configure_logging(opts.configroot)
    logging.getLogger("txzserver.test").warning("disk %s", "almost full")
    site = make_site(Page(), settings=settings)
    protocol, _ = connect(site)
    feed(protocol, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    site.reactor.advance(1)
    for name in (None, "access"):
        for handler in logging.getLogger(name).handlers:
            handler.flush()
    events = [json.loads(line) for line in (tmp_path / "log" / "event.log").read_text().splitlines()]
    (warning,) = [e for e in events if e["logger"] == "txzserver.test"]
    assert (warning["level"], warning["message"]) == ("WARNING", "disk almost full")
    (access,) = [json.loads(line) for line in (tmp_path / "log" / "access.log").read_text().splitlines()]
    assert set(access) == ACCESS_FIELDS
    assert (access["logger"], access["path"], access["status"], access["protocol"]) == (
        "access", "/x", 200, "http/1.1")
