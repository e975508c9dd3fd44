"""WebSocket clients that collect what they receive, in a background thread each."""

import base64
import json
import threading
import time

from websockets.sync.client import connect

EVENT_TYPES = {"created", "modified", "removed", "transition", "notification"}


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Collector(threading.Thread):
    """Connects to ``url`` and records every JSON message until stopped."""

    def __init__(self, url, headers=None, name="client", ssl_context=None):
        super().__init__(daemon=True, name=f"ws-{name}")
        self.url = url
        self.headers = headers or {}
        self.ssl_context = ssl_context
        self.messages = []
        self.welcome = None
        self.error = None
        self.ready = threading.Event()
        self._stop_event = threading.Event()
        self.ws = None

    def run(self):
        try:
            tls = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
            with connect(self.url, additional_headers=self.headers, open_timeout=30, **tls) as ws:
                self.ws = ws
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
        except Exception as exc:  # recorded for the test to report
            self.error = exc
        finally:
            self.ready.set()

    def start_and_wait(self, timeout=30):
        self.start()
        assert self.ready.wait(timeout), f"{self.name}: no welcome within {timeout} s"
        assert self.error is None, f"{self.name}: {self.error!r}"
        return self

    def send(self, message):
        self.ws.send(json.dumps(message))

    def events(self, **match):
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
