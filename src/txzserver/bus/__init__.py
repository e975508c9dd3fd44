"""The event bus: content events from Zope (after commit) to every instance's WebSockets."""

from .message import Event, EVENT_TYPES
from .interfaces import IEventPublisher

__all__ = ["Event", "EVENT_TYPES", "IEventPublisher"]
