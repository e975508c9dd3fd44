"""The JetStream side of the nats event bus, shared by the instances (``NatsBus``) and
`txzserver listen --durable`: the stream's configuration, subjects, durable consumers, and
``Arrivals``, which decides what of the stream is new (no socket: unit-tested alone).

Events go to ``STREAM.SITE`` (the first segment of the event's path; ``STREAM.all`` for a
change of the root's users), so a consumer may filter by site; every instance consumes all.
"""

import re
from collections import OrderedDict

#: seconds in which JetStream drops a re-sent event with the same id (Nats-Msg-Id): a publish
#: whose acknowledgement was lost is sent again, and stored once, if NATS is back in time
DUPLICATE_WINDOW = 300.0
#: seconds before an unacknowledged event is delivered again to the same consumer
ACK_WAIT = 30.0
#: events held for a consumer without acknowledgement (ours acknowledge per fetched batch)
MAX_ACK_PENDING = 20000
#: durable consumers unused for this long are removed by NATS (a scaled-down instance's)
MIN_INACTIVE = 3600.0

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def token(text):
    """``text`` as one subject token / consumer name: what NATS refuses becomes "_"."""
    return _NOT_TOKEN.sub("_", text)[:200] or "_"


def subject_of(stream, message):
    """The subject of a bus message: ``STREAM.SITE`` or ``STREAM.all``."""
    path = getattr(message, "path", None) or getattr(message, "site", "")
    site = path.strip("/").split("/", 1)[0]
    return f"{stream}.{token(site) if site else 'all'}"


def message_id(message):
    """The bus id of a stamped message: Nats-Msg-Id and the key of de-duplication."""
    return f"{message.instance}:{message.epoch}:{message.seq}"


def stream_config(bus, replicas):
    """The StreamConfig of ``bus`` (EventBusSettings): file storage, bounded by age and bytes,
    the oldest dropped first."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    return StreamConfig(
        name=bus.stream, subjects=[f"{bus.stream}.>"], retention=RetentionPolicy.LIMITS,
        max_age=bus.max_age, max_bytes=bus.max_bytes, discard=DiscardPolicy.OLD,
        storage=StorageType.FILE, num_replicas=replicas,
        duplicate_window=min(DUPLICATE_WINDOW, bus.max_age))


def replicas_for(servers):
    """3 copies of the stream when three or more servers are configured (a cluster: one node
    may go), else 1."""
    return 3 if len(servers) >= 3 else 1


async def ensure_stream(js, bus, replicas):
    """Create the stream, or bring an existing one to the configured limits."""
    from nats.js.errors import BadRequestError, NotFoundError

    config = stream_config(bus, replicas)
    try:
        info = await js.stream_info(bus.stream)
    except NotFoundError:
        try:
            return await js.add_stream(config)
        except BadRequestError:  # created by another instance at the same moment
            info = await js.stream_info(bus.stream)
    current = info.config
    if (current.max_age, current.max_bytes, current.subjects) != (
            config.max_age, config.max_bytes, config.subjects):
        config.num_replicas = current.num_replicas  # a replica change is an operator's act
        return await js.update_stream(config)
    return info


async def durable_consumer(js, bus, name, deliver=None, start_seq=None, start_time=None):
    """The ConsumerInfo of durable consumer ``name`` (created when missing) reading every
    subject of the stream; explicit acknowledgement.

    A new consumer starts at ``deliver`` ("new" by default, "all", or by ``start_seq`` /
    ``start_time``); an existing one goes on from its last acknowledged event, whatever it
    is given now (NATS keeps its position).
    """
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    try:
        info = await js.consumer_info(bus.stream, name)
    except NotFoundError:
        pass
    else:
        if info.num_ack_pending:  # a previous reader died with events unacknowledged
            return await reposition(js, bus, name, info.ack_floor.stream_seq + 1)
        return info
    policy = DeliverPolicy(deliver or "new")
    if start_seq is not None:
        policy = DeliverPolicy.BY_START_SEQUENCE
    elif start_time is not None:
        policy = DeliverPolicy.BY_START_TIME
    config = ConsumerConfig(
        durable_name=name, deliver_policy=policy, opt_start_seq=start_seq,
        opt_start_time=start_time, ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT,
        max_ack_pending=MAX_ACK_PENDING, filter_subject=f"{bus.stream}.>",
        inactive_threshold=max(MIN_INACTIVE, bus.max_age))
    return await js.add_consumer(bus.stream, config)


async def reposition(js, bus, name, next_seq):
    """Make durable consumer ``name`` deliver from stream sequence ``next_seq`` on, now.

    Events a consumer sent that never arrived (the connection dropped with them on the way,
    or their reader died) stay pending on the server and come back only after ``ACK_WAIT``,
    behind newer ones: out of order, and first seen as a gap. The reader knows what it
    delivered, so it makes the consumer anew right after that instead.
    """
    from nats.js.errors import NotFoundError

    try:
        await js.delete_consumer(bus.stream, name)
    except NotFoundError:
        pass
    return await durable_consumer(js, bus, name, start_seq=max(1, next_seq))


class Arrivals:
    """What of the stream is new, and what was lost (one thread).

    An event is delivered once: one already seen (its id among the ``recent`` last ones, or
    its number not above the last seen of its publisher run) is a duplicate, as is one this
    instance delivered itself before it came back (``local``). Lost events are counted two
    ways: a jump of the stream sequence (retention removed events before this consumer read
    them) and a jump inside a publisher run (that publisher dropped events: its queue was
    full while NATS was away). A reconnection or a redelivery is neither. After a stream
    jump every run starts a new baseline, so one loss is announced once.

    ``stream_seq``: the last stream sequence read (a durable consumer's acknowledged floor
    when it resumes; None: the first event read is the baseline).
    """

    def __init__(self, own_run=None, stream_seq=None, recent=20000, runs=1024):
        self.own_run = own_run
        self.stream_seq = stream_seq
        self.recent = OrderedDict()
        self.recent_size = recent
        self.runs = OrderedDict()  # (instance, epoch) -> last seq seen
        self.runs_size = runs
        self.resync = set()  # runs whose next number is a new baseline (after a stream jump)
        self.duplicates = 0

    def local(self, message):
        """This instance delivered ``message`` itself: its copy from the stream is a duplicate."""
        if message.seq:
            self._seen(message)

    def arrive(self, stream_seq, message):
        """(events lost just before ``message``, whose: an instance name, or None for the
        stream's retention, whether to deliver it). ``message`` None: an unreadable one,
        which only moves the stream sequence on."""
        missed = 0
        if self.stream_seq is None or stream_seq > self.stream_seq:
            if self.stream_seq is not None and stream_seq > self.stream_seq + 1:
                missed = stream_seq - self.stream_seq - 1
                self.resync = set(self.runs)
            self.stream_seq = stream_seq
        if message is None or not message.seq:  # unstamped: nothing to compare it with
            return missed, None, message is not None
        run = (message.instance, message.epoch)
        last = self.runs.get(run)
        if message_id(message) in self.recent or (last is not None and message.seq <= last):
            self.duplicates += 1
            return missed, None, False
        who = None
        if not missed and last is not None and run not in self.resync and run != self.own_run:
            missed = message.seq - last - 1
            who = message.instance if missed else None
        self.resync.discard(run)
        self._seen(message)
        return missed, who, True

    def _seen(self, message):
        self.recent[message_id(message)] = None
        if len(self.recent) > self.recent_size:
            self.recent.popitem(last=False)
        run = (message.instance, message.epoch)
        self.runs[run] = max(message.seq, self.runs.get(run, 0))
        self.runs.move_to_end(run)
        if len(self.runs) > self.runs_size:
            self.runs.popitem(last=False)


def unnumbered(message):
    """``message`` without its sequence number: for a hub that must not count runs itself
    (``Arrivals`` did; the hub's own count would announce a stream loss twice)."""
    return message.stamped(message.instance, message.epoch, 0)
