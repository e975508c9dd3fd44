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
