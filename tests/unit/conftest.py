"""Fixtures every unit test module may use."""

import pytest
from twisted.logger import globalLogPublisher


@pytest.fixture
def logged():
    """The Twisted log events emitted during the test, in order."""
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture
def instance(tmp_path):
    """An instance folder (etc/, var/, log/) for a zope.conf to be loaded from."""
    for sub in ("etc", "var", "log"):
        (tmp_path / sub).mkdir()
    return tmp_path


@pytest.fixture(params=["twisted", "llhttp"])
def each_http1_parser(request, monkeypatch):
    """Runs the test once with each http1-parser (settings made by ``helpers.make_settings``):
    modules proving the HTTP/1.1 contract use it for all their tests (``pytestmark``)."""
    from . import helpers
    monkeypatch.setattr(helpers, "HTTP1_PARSER", request.param)
    return request.param
