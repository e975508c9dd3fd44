"""A wss:// client that records the JSON messages it receives, in a background thread."""

import base64
import json
import ssl
import threading
import time

from websockets.sync.client import connect

EVENT_TYPES = {"created", "modified", "removed", "transition", "notification"}


class Listener(threading.Thread):
    def __init__(self, url, cafile, user=None, name="client"):
        super().__init__(daemon=True, name=f"wss-{name}")
        # WebSocket over HTTP/1.1: offer only http/1.1 by ALPN (the front would pick h2)
        self.url, self.ssl_context = url, ssl.create_default_context(cafile=str(cafile))
        self.ssl_context.set_alpn_protocols(["http/1.1"])
        self.headers = {}
        if user:
            token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.messages, self.welcome, self.error = [], None, None
        self.ready, self._stop_event = threading.Event(), threading.Event()

    def run(self):
        try:
            with connect(self.url, ssl=self.ssl_context, additional_headers=self.headers,
                         open_timeout=30) as ws:
                self.response_headers = ws.response.headers
                while not self._stop_event.is_set():
                    try:
                        message = json.loads(ws.recv(timeout=0.2))
                    except TimeoutError:
                        continue
                    if message.get("type") == "welcome":
                        self.welcome = message
                        self.ready.set()
                    self.messages.append(message)
        except Exception as exc:  # reported by the test
            self.error = exc
        finally:
            self.ready.set()

    def start_and_wait(self, timeout=30):
        self.start()
        assert self.ready.wait(timeout), f"{self.name}: no welcome within {timeout} s"
        assert self.error is None, f"{self.name}: {self.error!r}"
        return self

    def events(self, **match):
        return [m for m in self.messages if m.get("type") in EVENT_TYPES
                and all(m.get(k) == v for k, v in match.items())]

    def wait_for_event(self, timeout=20, **match):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.events(**match):
                return found
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no event {match} within {timeout} s; got {self.messages}")

    def stop(self):
        self._stop_event.set()
        self.join(5)
