"""WebSockets on the streams of an HTTP/3 connection (RFC 9220): ``H3Client`` (aioquic's
asyncio client, h3client.py) with extended CONNECT streams framed by wsproto, as h2ws.py does
for HTTP/2."""

import asyncio
import json
import time

from aioquic.h3 import events as h3events
from aioquic.h3.connection import Setting
from aioquic.quic import events as quicevents
from wsproto.frame_protocol import FrameProtocol, Opcode

from . import h3client
from .h3client import H3Client


class WebSocketStream:
    """What one CONNECT stream received: status, headers, the WebSocket's messages, its end."""

    def __init__(self):
        self.status = None
        self.headers = {}
        self.body = bytearray()  # a refusal's reason
        self.frames = FrameProtocol(client=True, extensions=[])
        self.messages = []
        self.partial = ""
        self.closed = None  # the close frame's payload
        self.ended = False
        self.reset = None  # the server's reset error code
        self.received = 0

    def take(self, data):
        self.received += len(data)
        if self.status != 200:
            self.body.extend(data)
            return
        self.frames.receive_bytes(data)
        for frame in self.frames.received_frames():
            if frame.opcode in (Opcode.TEXT, Opcode.CONTINUATION):
                self.partial += frame.payload
                if frame.message_finished:
                    self.messages.append(json.loads(self.partial))
                    self.partial = ""
            elif frame.opcode is Opcode.CLOSE:
                self.closed = frame.payload


class H3WebSocketClient(H3Client):
    """``H3Client`` whose extended CONNECT streams carry WebSockets; pages as before."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.websockets = {}

    async def enable_connect_protocol(self, timeout=30):
        """The server's SETTINGS_ENABLE_CONNECT_PROTOCOL, once its SETTINGS arrived."""
        await self.until(lambda: self.h3.received_settings is not None, timeout,
                         "the server's SETTINGS")
        return self.h3.received_settings.get(Setting.ENABLE_CONNECT_PROTOCOL, 0)

    def connect_stream(self, path, headers=(), protocol=b"websocket", authority=b"localhost"):
        """Open a stream with an extended CONNECT (``protocol`` None: a plain CONNECT)."""
        stream_id = self._quic.get_next_available_stream_id()
        fields = [(b":method", b"CONNECT")]
        if protocol is not None:
            fields.append((b":protocol", protocol))
        fields += [(b":scheme", b"https"), (b":path", path.encode()), (b":authority", authority),
                   (b"sec-websocket-version", b"13"),
                   *[(name.encode(), value.encode()) for name, value in headers]]
        self.websockets[stream_id] = WebSocketStream()
        self.h3.send_headers(stream_id, fields)
        self.transmit()
        return stream_id

    async def websocket(self, path, headers=(), timeout=30):
        """An accepted WebSocket: its stream id, once the welcome message arrived."""
        stream_id = self.connect_stream(path, headers)
        stream = self.websockets[stream_id]
        await self.until(lambda: stream.status is not None or stream.reset is not None, timeout,
                         f"an answer to the CONNECT of {path}")
        assert stream.status == 200, (stream.status, stream.headers, bytes(stream.body))
        await self.until(lambda: stream.messages, timeout, "the welcome message")
        return stream_id

    def send_text(self, stream_id, message):
        frames = self.websockets[stream_id].frames
        self.h3.send_data(stream_id, bytes(frames.send_data(json.dumps(message), fin=True)),
                          end_stream=False)
        self.transmit()

    def send_close(self, stream_id, code=1000):
        self.h3.send_data(stream_id, bytes(self.websockets[stream_id].frames.close(code)),
                          end_stream=False)
        self.transmit()

    def shut_window(self):
        """Grant no more flow-control credit, as a client whose application reads nothing
        does (aioquic raises its windows as data arrives, whoever reads it: turned off on
        this client object). Packets are still acknowledged."""
        self._quic._write_stream_limits = lambda builder, space, stream: None

    def reset(self, stream_id):
        """Cancel the stream (RFC 9220 3: a reset is the TCP RST of RFC 6455)."""
        self._quic.stop_stream(stream_id, 0x10C)  # H3_REQUEST_CANCELLED
        self._quic.reset_stream(stream_id, 0x10C)
        self.transmit()

    async def wait_message(self, stream_id, timeout=30, **match):
        stream = self.websockets[stream_id]

        def found():
            return [m for m in stream.messages if all(m.get(k) == v for k, v in match.items())]

        await self.until(found, timeout, f"a message {match} on stream {stream_id}")
        return found()[0]

    async def until(self, condition, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not met in {timeout} s")
            await asyncio.sleep(0.02)

    def quic_event_received(self, event):
        stream = self.websockets.get(getattr(event, "stream_id", None))
        if stream is None:
            super().quic_event_received(event)
            return
        if isinstance(event, quicevents.StreamReset):
            stream.reset = event.error_code
        for h3event in self.h3.handle_event(event):
            if isinstance(h3event, h3events.HeadersReceived):
                stream.headers.update(h3event.headers)
                stream.status = int(stream.headers.get(b":status", b"0"))
            elif isinstance(h3event, h3events.DataReceived):
                stream.take(h3event.data)
            if getattr(h3event, "stream_ended", False):
                stream.ended = True


def session(port, ca, **options):
    """An ``H3WebSocketClient`` connected to ``port`` (h3client.session's options)."""
    return h3client.session(port, ca, client=H3WebSocketClient, **options)
