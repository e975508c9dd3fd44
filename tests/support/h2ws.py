"""An HTTP/2 client with WebSockets on its streams (RFC 8441), driven by hand with the h2
library (TLS with ALPN h2, or h2c with prior knowledge) and wsproto's framing."""

import json
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from wsproto.frame_protocol import FrameProtocol, Opcode


class Stream:
    """What one stream received: status, headers, body (or WebSocket messages), its end."""

    def __init__(self, websocket=False):
        self.status = None
        self.headers = {}
        self.body = bytearray()
        self.ended = False
        self.reset = None  # the RST_STREAM error code
        self.frames = FrameProtocol(client=True, extensions=[]) if websocket else None
        self.messages = []
        self.partial = ""
        self.closed = None  # (code, reason) of a close frame
        self.unacknowledged = 0  # DATA bytes not given back to the stream's window
        self.received = 0


class H2WebSocketClient:
    """One HTTP/2 connection; ``reading[stream]`` False leaves that stream's window shut (the
    connection's window is still opened, so the other streams go on)."""

    def __init__(self, port, ca=None, host="localhost", timeout=30):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if ca is not None:
            context = ssl.create_default_context(cafile=str(ca))
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname=host)
            assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        self.sock = sock
        self.scheme = "https" if ca is not None else "http"
        self.authority = f"{host}:{port}"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.streams = {}
        self.reading = {}
        self.settings_received = False
        self.terminated = None
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, timeout=0.2):
        """Read what the server sent within ``timeout`` and handle its events."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
            return
        if not data:
            raise ConnectionError("the server closed the HTTP/2 connection")
        for event in self.conn.receive_data(data):
            self._handle(event)
        self.flush()

    def until(self, condition, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not met in {timeout} s")
            self.pump()

    def _handle(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event.error_code
        stream = self.streams.get(getattr(event, "stream_id", None))
        if stream is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            stream.headers = {k.decode(): v.decode() for k, v in event.headers}
            stream.status = int(stream.headers[":status"])
        elif isinstance(event, h2.events.DataReceived):
            stream.received += len(event.data)
            if not event.flow_controlled_length:
                pass  # an empty DATA frame (END_STREAM): nothing to give back
            elif self.reading.get(event.stream_id, True):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                self.conn.increment_flow_control_window(event.flow_controlled_length)
                stream.unacknowledged += event.flow_controlled_length
            if stream.frames is None or stream.status != 200:  # a page, or a refusal's reason
                stream.body.extend(event.data)
            else:
                stream.frames.receive_bytes(event.data)
                for frame in stream.frames.received_frames():
                    if frame.opcode in (Opcode.TEXT, Opcode.CONTINUATION):
                        stream.partial += frame.payload  # wsproto hands on what has arrived
                        if frame.message_finished:
                            stream.messages.append(json.loads(stream.partial))
                            stream.partial = ""
                    elif frame.opcode is Opcode.CLOSE:
                        stream.closed = frame.payload
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            stream.reset = event.error_code

    @property
    def enable_connect_protocol(self):
        return self.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL, 0)

    def connect(self, path, headers=(), protocol="websocket"):
        """Open a stream with an extended CONNECT (``protocol`` None: a plain CONNECT)."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(":method", "CONNECT")]
        if protocol is not None:
            fields += [(":protocol", protocol), (":scheme", self.scheme), (":path", path)]
        fields += [(":authority", self.authority), ("sec-websocket-version", "13"), *headers]
        self.streams[stream_id] = Stream(websocket=True)
        self.conn.send_headers(stream_id, fields)
        self.flush()
        return stream_id

    def websocket(self, path, headers=(), timeout=30):
        """An accepted WebSocket: its stream id, once the welcome message arrived."""
        stream_id = self.connect(path, headers)
        stream = self.streams[stream_id]
        self.until(lambda: stream.status is not None or stream.reset is not None, timeout,
                   f"an answer to the CONNECT of {path}")
        assert stream.status == 200, (stream.status, stream.headers, bytes(stream.body))
        self.until(lambda: stream.messages, timeout, "the welcome message")
        return stream_id

    def request(self, method, path, headers=()):
        stream_id = self.conn.get_next_available_stream_id()
        self.streams[stream_id] = Stream()
        self.conn.send_headers(stream_id, [(":method", method), (":scheme", self.scheme),
                                           (":path", path), (":authority", self.authority),
                                           *headers], end_stream=True)
        self.flush()
        return stream_id

    def get(self, path, headers=(), timeout=30):
        """(status, body) of a GET on its own stream."""
        stream_id = self.request("GET", path, headers)
        stream = self.streams[stream_id]
        self.until(lambda: stream.ended or stream.reset is not None, timeout, f"GET {path}")
        return stream.status, bytes(stream.body)

    def send_text(self, stream_id, message):
        frames = self.streams[stream_id].frames
        self.conn.send_data(stream_id, frames.send_data(json.dumps(message), fin=True))
        self.flush()

    def send_close(self, stream_id, code=1000):
        self.conn.send_data(stream_id, self.streams[stream_id].frames.close(code))
        self.flush()

    def wait_message(self, stream_id, timeout=30, **match):
        stream = self.streams[stream_id]

        def found():
            return [m for m in stream.messages if all(m.get(k) == v for k, v in match.items())]

        self.until(found, timeout, f"a message {match} on stream {stream_id}")
        return found()[0]

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except OSError:
            pass
        self.sock.close()
