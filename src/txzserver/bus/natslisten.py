"""`txzserver listen --durable NAME`: the events of the nats bus's stream, read with a durable
consumer of that name, one JSON line each on stdout; for static-site builders.

NATS keeps the consumer's position: a builder that was stopped gets every event it missed
(as long as the stream keeps them), in order, then goes on live. Each event is acknowledged
right after its line is written and flushed, so a stop (SIGTERM, Ctrl-C) between two events
repeats or loses none; a kill -9 in that instant may print the last one again. ``--since``
a stream sequence or an ISO time starts the consumer there (made anew if it existed).

It reads the stream directly, past Plone's permissions: by default it prints only the
events anonymous visitors may see (what a public static site shows; the actor only where
the site shows it to them); ``everything`` prints all of them. Each line is the event as
browsers get it plus ``seq``, its stream sequence (for ``--since``). A ``gap`` line says the
stream no longer held events the consumer had not read (retention): rebuild in full.
"""

import asyncio
import datetime
import json
import signal
import sys

from .message import PrincipalChange, UnsafeURL, from_wire
from .natsconn import connect_options, shown
from .natsstream import Arrivals, durable_consumer, reposition, token

ANONYMOUS = frozenset({"Anonymous"})
FETCH_WAIT = 1.0
#: seconds the first connection may take before the command gives up (status 2)
CONNECT_WAIT = 10.0


class DurableListenError(Exception):
    """A clear reason to stop with status 2 (NATS unreachable, no stream, bad --since)."""


def parse_since(value):
    """``--since``: a stream sequence (an integer from 1) or an ISO-8601 time -> (seq, time)."""
    if value is None:
        return None, None
    text = value.strip()
    if text.isdigit():
        if int(text) < 1:
            raise DurableListenError("--since: a stream sequence starts at 1")
        return int(text), None
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DurableListenError(f"--since must be a stream sequence or an ISO time"
                                 f" (2024-05-01T12:00:00Z), not {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return None, when


def in_path(prefix, path):
    """Whether ``path`` is ``prefix`` or below it, on whole segments."""
    if not prefix:
        return True
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def line_of(message, seq, everything):
    """The JSON line of an event, or None when it is not printed."""
    if isinstance(message, PrincipalChange) or not hasattr(message, "public"):
        return None
    if not everything and message.guard.isdisjoint(ANONYMOUS):
        return None
    data = message.public(with_actor=everything or message.shows_actor(ANONYMOUS))
    data["seq"] = seq
    return json.dumps(data, separators=(",", ":"))


def listen_durable(bus, name, gap_status, path=None, since=None, count=0, timeout=0,
                   fail_on_gap=False, everything=False, out=sys.stdout, err=sys.stderr):
    """Print events as described above until ``count`` events or ``timeout`` seconds (0: no
    limit) or a stop signal; return 0, or ``gap_status`` at a gap with ``fail_on_gap``."""
    start_seq, start_time = parse_since(since)
    reader = _Reader(bus, token(name), path, start_seq, start_time, count,
                     gap_status if fail_on_gap else None, everything, out, err)
    return asyncio.run(reader.run(timeout))


class _Reader:
    def __init__(self, bus, name, path, start_seq, start_time, count, gap_status, everything,
                 out, err):
        self.bus, self.name, self.path = bus, name, path
        self.start_seq, self.start_time = start_seq, start_time
        self.count, self.gap_status, self.everything = count, gap_status, everything
        self.out, self.err = out, err
        self.printed = 0
        self.stopping = None
        self._last_error = None
        self._lost_link = False

    async def run(self, timeout):
        import nats
        import nats.errors

        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if timeout:
            loop.call_later(timeout, self.stopping.set)
        options = connect_options(self.bus, name=f"txzserver listen {self.name}")
        options["error_cb"] = self._error
        options["reconnected_cb"] = self._reconnected
        try:  # once connected it reconnects for ever; the first connection must come soon
            nc = await asyncio.wait_for(nats.connect(**options), CONNECT_WAIT)
        except (nats.errors.Error, OSError, asyncio.TimeoutError) as exc:
            raise DurableListenError(f"cannot reach NATS at {shown(self.bus.nats_servers)}:"
                                     f" {exc!r}") from exc
        try:
            return await self._read(nc.jetstream())
        finally:
            await nc.close()

    async def _reconnected(self):
        self._lost_link = True

    async def _error(self, exc):
        if repr(exc) != self._last_error:  # once per kind of error, not per attempt
            self._last_error = repr(exc)
            self.err.write(f"txzserver listen: NATS: {exc!r}\n")
            self.err.flush()

    async def _consumer(self, js):
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(self.bus.stream)
        except NotFoundError:
            raise DurableListenError(f"no stream {self.bus.stream} on NATS: no instance with"
                                     " this <event-bus> has started yet") from None
        resumed = self.start_seq is None and self.start_time is None
        if not resumed:
            try:
                await js.delete_consumer(self.bus.stream, self.name)
                self.err.write(f"durable {self.name}: started again at --since\n")
            except NotFoundError:
                pass
        info = await durable_consumer(js, self.bus, self.name, start_seq=self.start_seq,
                                      start_time=self.start_time)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        if self.start_seq is not None:
            return Arrivals(stream_seq=self.start_seq - 1)
        return Arrivals(stream_seq=floor or None)

    async def _read(self, js):
        import nats.errors
        import nats.js.errors

        errors = (nats.errors.Error, nats.js.errors.Error, OSError)
        arrivals = await self._consumer(js)
        psub = await js.pull_subscribe_bind(durable=self.name, stream=self.bus.stream)
        self.err.write(json.dumps({"type": "welcome", "durable": self.name,
                                   "stream": self.bus.stream}) + "\n")
        self.err.flush()
        while not self.stopping.is_set():
            try:
                if self._lost_link and arrivals.stream_seq:
                    # events on their way when the link dropped would come back only after
                    # the consumer's ack-wait, behind newer ones: go on from the last printed
                    await reposition(js, self.bus, self.name, arrivals.stream_seq + 1)
                    self._lost_link = False
                msgs = await psub.fetch(64, timeout=FETCH_WAIT)
            except asyncio.TimeoutError:
                continue
            except errors as exc:  # NATS restarting: nats-py reconnects by itself
                self.err.write(f"txzserver listen: NATS: {exc!r} (retrying)\n")
                self._lost_link = True
                await asyncio.sleep(FETCH_WAIT)
                continue
            for msg in msgs:
                if await self._hole(js, arrivals, msg):
                    self._lost_link = True  # go on from the last printed event
                    break
                status = self._one(arrivals, msg)
                if status is not None:
                    return status
                try:
                    await msg.ack()
                except errors:  # redelivered, and dropped as already printed
                    pass
                if self.count and self.printed >= self.count:
                    return 0
                if self.stopping.is_set():
                    break
        return 0

    async def _hole(self, js, arrivals, msg):
        """Whether ``msg`` comes after events the stream still holds but that were lost on
        the way (they would come back after ack-wait, out of order); a hole the stream no
        longer holds is a real loss, printed as a gap by ``_one``."""
        expected = (arrivals.stream_seq or 0) + 1
        if arrivals.stream_seq is None or msg.metadata.sequence.stream <= expected:
            return False
        import nats.errors
        import nats.js.errors
        try:
            info = await js.stream_info(self.bus.stream)
        except (nats.errors.Error, nats.js.errors.Error, OSError):
            return True  # NATS away: read again from the last printed event
        return info.state.first_seq <= expected

    def _one(self, arrivals, msg):
        """Print what ``msg`` holds; a status to exit with, or None."""
        seq = msg.metadata.sequence.stream
        try:
            message = from_wire(msg.data)
        except (UnsafeURL, ValueError, TypeError, RecursionError) as exc:
            self.err.write(f"txzserver listen: skipped stream message {seq}: {exc}\n")
            message = None
        missed, _, new = arrivals.arrive(seq, message)
        if missed:
            self.out.write(json.dumps({"type": "gap", "instance": self.bus.stream,
                                       "missed": missed, "seq": seq}) + "\n")
            self.out.flush()
            if self.gap_status is not None:
                return self.gap_status
        if not new or not in_path(self.path, getattr(message, "path", "")):
            return None
        line = line_of(message, seq, self.everything)
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()
            self.printed += 1
        return None
