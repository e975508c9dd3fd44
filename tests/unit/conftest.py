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
