"""How long a publisher's own messages take to come back to it through the bus (the
``txzserver_bus_lag_seconds`` gauge), for the ZeroMQ and the NATS publishers alike."""

import threading
import time
from collections import OrderedDict


class RoundTrips:
    """The send times of a publisher run's latest ``SAMPLES`` numbered messages; ``latest``: the
    seconds the last one heard back took (None until then). A monotonic clock of this process
    times both ends, so no clock skew between hosts enters. Any thread."""

    SAMPLES = 256

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.latest = None
        self._sent_at = OrderedDict()  # seq -> send time, the latest SAMPLES
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._sent_at)

    def sent(self, seq):
        with self._lock:
            self._sent_at[seq] = self.clock()
            if len(self._sent_at) > self.SAMPLES:
                self._sent_at.popitem(last=False)

    def came_back(self, seq):
        with self._lock:
            sent_at = self._sent_at.pop(seq, None)
        if sent_at is not None:
            self.latest = self.clock() - sent_at
