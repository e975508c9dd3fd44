"""HTTP/2 limits around h2: frame headers read ahead of it, token buckets for resets and
control frames, the SETTINGS we advertise, and header fields counted as HTTP/1.1 lines.
Pure functions and small classes, no Twisted: ``H2Channel`` (http2.py) uses them.
"""

import h2.errors
import h2.settings

#: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", which h2 checks; frames follow it.
PREFACE_LENGTH = 24
SETTINGS_FRAME = 0x4
#: Frames the server must answer (SETTINGS with an ACK, PING with a PING): a flood's cost.
CONTROL_FRAMES = frozenset({SETTINGS_FRAME, 0x6})
#: SETTINGS and PING with this flag answer ours: nothing to answer, not counted.
ACK_FLAG = 0x1

class TokenBucket:
    """What a client may do ``burst`` times at once, refilled at ``rate`` per second.

    Stream resets (HTTP/2 Rapid Reset, CVE-2023-44487): browsers cancel a few streams when a
    page is left; a flood of HEADERS + RST_STREAM empties the bucket in a moment. SETTINGS and
    PING frames (RFC 9113 10.5): a browser sends a handful; a flood makes the server answer
    each one.
    """

    def __init__(self, burst, rate, now):
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self.stamp = now

    def spend(self, now):
        """Take one token; False when the bucket is empty (the connection must go)."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FrameGuard:
    """Reads the 9-byte frame headers of what the client sends, ahead of h2.

    h2 (4.4) buffers a frame's whole declared length before it compares it with
    SETTINGS_MAX_FRAME_SIZE: a header announcing 16 MB, or garbage read as one ("GARBAGE"
    announces 4.6 MB), made it hold up to 16 MB per connection. RFC 9113 4.2: a frame over the
    limit is a connection error FRAME_SIZE_ERROR, known as soon as its header is; 3.4: a
    preface not followed by SETTINGS is a connection error PROTOCOL_ERROR; 10.5: a flood of
    SETTINGS or PING frames (each one answered) spends ``control`` and ends in
    ENHANCE_YOUR_CALM.
    """

    def __init__(self, control, clock):
        self._skip = PREFACE_LENGTH  # bytes to pass over: the preface, then a frame's payload
        self._head = b""
        self._first = True
        self.control = control
        self._clock = clock

    def check(self, data, limit):
        """(error code, reason) for the first bad frame header in ``data``, else None."""
        at, end = 0, len(data)
        while at < end:
            if self._skip:
                step = min(self._skip, end - at)
                self._skip -= step
                at += step
                continue
            take = 9 - len(self._head)
            self._head += bytes(data[at:at + take])
            at += take
            if len(self._head) < 9:
                return None
            length, kind = int.from_bytes(self._head[:3], "big"), self._head[3]
            flags = self._head[4]
            self._head = b""
            if self._first and kind != SETTINGS_FRAME:
                return h2.errors.ErrorCodes.PROTOCOL_ERROR, "the preface is not followed by SETTINGS"
            self._first = False
            if length > limit:
                return (h2.errors.ErrorCodes.FRAME_SIZE_ERROR,
                        f"a frame of {length} bytes announced (SETTINGS_MAX_FRAME_SIZE {limit})")
            answered = kind in CONTROL_FRAMES and not flags & ACK_FLAG
            if answered and not self.control.spend(self._clock()):
                return (h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                        f"more than {self.control.burst} SETTINGS/PING frames"
                        " (http2-max-control-frames)")
            self._skip = length
        return None


class AdvertisedSettings(h2.settings.Settings):
    """Our SETTINGS, with h2's own check of MAX_CONCURRENT_STREAMS moved out of the way.

    h2 treats a HEADERS frame past the advertised limit as a connection error (GOAWAY
    PROTOCOL_ERROR): every stream of the connection dies with it. RFC 9113 5.1.2 asks for a
    stream error, so ``H2Channel`` refuses the excess stream itself (REFUSED_STREAM). h2 reads
    the limit it enforces from this property, while the SETTINGS frame it sends is built from
    the mapping: the client is told the real limit. h2 keeps a backstop (``h2_limit``) for
    streams opened within one read, before the channel sees them.
    """

    h2_limit = None

    @property
    def max_concurrent_streams(self):
        return self.h2_limit

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value):
        self[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = value


def field_count(headers):
    """Header fields of an HTTP/2 request, counted as HTTP/1.1 header lines: pseudo-headers
    are the request line, and cookie crumbs (RFC 9113 8.2.3) one Cookie line."""
    names = [name for name, _ in headers if not name.startswith(b":")]
    cookies = names.count(b"cookie")
    return len(names) - cookies + (1 if cookies else 0)
