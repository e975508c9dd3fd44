"""WebSocket clients that collect what they receive, in a background thread each.

A listener thread never asserts: it records why it stopped (the exception, the close code and
reason the server sent) and every waiting call of the test's thread raises that at once, so a
test reads "closed by the server 1011 'going away'" instead of "no event within 20 s".
"""

import base64
import json
import threading
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

EVENT_TYPES = {"created", "modified", "removed", "transition", "notification"}
#: seconds the opening handshake may take (the waiting calls wait a little longer than this,
#: so a handshake that times out is reported as such, not as a missing welcome)
OPEN_TIMEOUT = 30


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def basic_field(user, password):
    """The same credentials as one HTTP/2 or HTTP/3 header pair (field names are lower case)."""
    ((name, value),) = basic(user, password).items()
    return name.lower(), value


class ListenerDied(AssertionError):
    """The listener thread stopped before the test stopped it."""


class Collector(threading.Thread):
    """Connects to ``url`` and records every JSON message until stopped."""

    def __init__(self, url, headers=None, name="client", ssl_context=None):
        super().__init__(daemon=True, name=f"ws-{name}")
        self.url = url
        self.headers = headers or {}
        self.ssl_context = ssl_context
        self.messages = []
        self.welcome = None
        self.error = None  # the exception that ended the thread (None: stopped by the test)
        self.close_code = None  # what the server's close frame said, when it sent one
        self.close_reason = None
        self.state = "not started"  # connecting, open, closed
        self.closed_at = None  # time.monotonic() when the connection ended
        self.ready = threading.Event()
        self._stop_event = threading.Event()
        self.ws = None

    def run(self):
        try:
            self.state = "connecting"
            tls = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
            with connect(self.url, additional_headers=self.headers, open_timeout=OPEN_TIMEOUT,
                         **tls) as ws:
                self.ws = ws
                self.state = "open"
                self.response_headers = ws.response.headers
                while not self._stop_event.is_set():
                    try:
                        text = ws.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    message = json.loads(text)
                    if message.get("type") == "welcome":
                        self.welcome = message
                        self.ready.set()
                    self.messages.append(message)
        except ConnectionClosed as exc:  # recorded for the test to report
            self.error = exc
            if exc.rcvd is not None:
                self.close_code, self.close_reason = exc.rcvd.code, exc.rcvd.reason
        except Exception as exc:  # recorded for the test to report
            self.error = exc
        finally:
            self.closed_at = time.monotonic()
            self.state = "closed"
            self.ready.set()

    def died(self):
        """Why the thread stopped on its own, as a sentence; None while it runs or was stopped."""
        if self._stop_event.is_set() or self.state != "closed":
            return None
        close = (f"; the server closed with {self.close_code} {self.close_reason!r}"
                 if self.close_code is not None else "")
        return (f"{self.name}: the listener stopped after {len(self.messages)} messages"
                f" ({'with' if self.welcome else 'before'} the welcome): {self.error!r}{close}")

    def check(self):
        """Raise ListenerDied if the listener stopped on its own."""
        reason = self.died()
        if reason:
            raise ListenerDied(reason)
        return self

    def start_and_wait(self, timeout=OPEN_TIMEOUT + 10):
        self.start()
        if not self.ready.wait(timeout):
            raise AssertionError(f"{self.name}: no welcome within {timeout} s (state {self.state})")
        return self.check()

    def send(self, message):
        self.check()
        self.ws.send(json.dumps(message))

    def events(self, **match):
        """The events received so far that match; raises ListenerDied if the listener stopped,
        so that "no such event" never means "no longer listening"."""
        self.check()
        return [m for m in self.messages if m.get("type") in EVENT_TYPES
                and all(m.get(k) == v for k, v in match.items())]

    def wait_for_event(self, timeout=20, **match):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(**match)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no event {match} within {timeout} s; got {self.messages}")

    def stop(self):
        self._stop_event.set()
        self.join(5)
