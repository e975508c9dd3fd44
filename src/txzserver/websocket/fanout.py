"""Deliver events to the connections allowed to see them (reactor thread only).

Guards are matched in memory: a connection holds its user's tokens (computed once at the
handshake), an event carries the tokens allowed to see it; delivery is a set intersection.
Events that crossed the bus carry their publisher's sequence numbers: a jump means some were
lost on the way, and every connection is told so before the next event (``Sequences``); a
publisher's heartbeat, carrying its last number, tells the same when no event follows the loss.
"""

import gc
import json
import time
import weakref
from collections import OrderedDict

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from .principals import Gone

log = Logger()
#: Close code asking the client to reconnect and authenticate again (4000-4999: for
#: applications, RFC 6455 7.4.2): its user was removed, logged out or given a new password.
REAUTHENTICATE = 4001


def normalize_path(path):
    """"/Plone/news/" -> "/Plone/news"; the root is "/"; ValueError for non-absolute paths."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("path must be an absolute path like /Plone/news")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("path must not contain . or .. segments")
    trimmed = path.rstrip("/")
    return trimmed or "/"


def path_matches(prefix, path):
    """True if ``path`` is ``prefix`` or below it, on whole segments."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


class Credentials:
    """What a connection's principal was looked up with (the handshake's environ without its
    body, and the site id), kept to look it up again after lost bus messages; one object per
    cache key, shared by the connections that have it (``Hub.credentials``)."""

    __slots__ = ("environ", "site", "__weakref__")

    def __init__(self, environ, site):
        self.environ = {k: v for k, v in environ.items() if k != "wsgi.input"}
        self.site = site


class Subscriber:
    """What the hub needs of a connection: its user and tokens, subscribed prefixes, a send
    method, ``close(code, reason)`` for when its user is removed or logged out, ``site``, the
    path of the Plone site it authenticated against (its tokens are that site's), and the
    ``credentials`` its principal was looked up with (None: never looked up again)."""

    __slots__ = ("tokens", "paths", "send", "userid", "close", "site", "credentials")

    def __init__(self, tokens, paths, send, userid=None, close=None, site="/", credentials=None):
        self.tokens = tokens if isinstance(tokens, frozenset) else frozenset(tokens)
        self.paths = set(paths)
        self.send = send
        self.userid = userid
        self.close = close
        self.site = site
        self.credentials = credentials

    def outside(self, path):
        """Why ``path`` may not be subscribed to (it is not in this connection's site), or None."""
        if path_matches(self.site, path):
            return None
        return (f"path {path} is outside this connection's site {self.site}: open a"
                f" connection to that site's endpoint")

    def wants(self, event):
        return not self.tokens.isdisjoint(event.guard) and any(path_matches(p, event.path)
                                                               for p in self.paths)


class Sequences:
    """The last sequence number seen from each publisher run (reactor thread only).

    A run is (instance, epoch): one start of one instance's bus publisher, numbering its
    events 1, 2, 3... The first message heard from a run (an event or a heartbeat) is the
    baseline, not a gap: this process may have started after the run did, and a restarted
    instance is a new run counting from 1 again (not a replay). After that, a jump means events
    were lost (broker down, a high-water mark, a full publisher), and a number not above the
    last one is a duplicate or an event already counted as missed. A heartbeat carries the
    run's last number: above the last one seen, the difference was lost (``missed_by``).
    Unstamped events (seq 0, in-process delivery) are not tracked.

    Memory is bounded: the ``limit`` most recently heard runs are remembered; a run's final
    heartbeat (a clean stop) forgets it; and a run unheard for ``forget_after`` seconds of a
    working bus is forgotten (a crashed instance sends no final heartbeat). Time during which
    nothing at all was heard for ``silence`` seconds (the broker down: every live run
    heartbeats more often than that) does not count, so an outage forgets no live run and
    its first heartbeat afterwards still reports what the outage lost.

    A jump no publisher can make (more than ``MAX_RATE`` events a second since the run's last
    message, and more than ``MIN_JUMP``) is ``TOO_FAR``: such a message is dropped and the run's
    number stays, so a forged huge number cannot make the run's real events look like
    duplicates; a real run catches up as time passes, its allowance growing with it.
    """

    TOO_FAR = -1
    MAX_RATE = 100000
    MIN_JUMP = 100000
    #: A run unheard this long (while others were heard) is forgotten: ten times the longest
    #: heartbeat interval a publisher may be given.
    FORGET_AFTER = 600.0
    #: Nothing heard from any run this long: the bus itself was down (twice the longest
    #: heartbeat interval); the time before it does not count towards FORGET_AFTER.
    SILENCE = 120.0

    def __init__(self, limit=1024, clock=time.monotonic, forget_after=FORGET_AFTER,
                 silence=SILENCE):
        self.limit = limit
        self.clock = clock
        self.forget_after = forget_after
        self.silence = silence
        self.last = OrderedDict()  # run -> (seq, when it was seen), least recently heard first
        self._heard = None  # when anything was last heard
        self._alive_since = None  # when the bus was last heard again after a silence

    def missed_before(self, event):
        """How many events of ``event``'s run were lost just before it (0 when none), None
        when ``event`` is a duplicate or comes late, or TOO_FAR: drop it."""
        if not event.seq:
            return 0
        moved = self._advance((event.instance, event.epoch), event.seq, repeat=False)
        return moved if moved in (None, self.TOO_FAR) else max(moved - 1, 0)

    def missed_by(self, heartbeat):
        """How many events of ``heartbeat``'s run were lost since the last one seen (0 when
        none, or for the run's first message heard here), or TOO_FAR: drop it. A final
        heartbeat forgets the run once counted."""
        run = (heartbeat.instance, heartbeat.epoch)
        moved = self._advance(run, heartbeat.seq, repeat=True)
        if heartbeat.final and moved != self.TOO_FAR:
            self.last.pop(run, None)
        return moved or 0

    def _advance(self, run, seq, repeat):
        """Record ``seq`` as ``run``'s last number; how far it moved (0 for a new run), None
        when it is below the last (or equal to it, unless ``repeat``: a heartbeat repeats the
        last number, an event never does), or TOO_FAR."""
        now = self.clock()
        self._forget(now)
        last, seen = self.last.get(run, (None, None))
        if last is not None:
            if seq < last or (seq == last and not repeat):
                return None
            if seq - last > max(self.MIN_JUMP, self.MAX_RATE * (now - seen)):
                return self.TOO_FAR
        self._heard_from(run, seq, now)
        return 0 if last is None else seq - last

    def _heard_from(self, run, seq, now):
        self.last[run] = (seq, now)
        self.last.move_to_end(run)
        if len(self.last) > self.limit:
            self.last.popitem(last=False)

    def _forget(self, now):
        """Forget the runs unheard for ``forget_after`` seconds of a working bus."""
        if self._heard is None or now - self._heard > self.silence:
            self._alive_since = now
        self._heard = now
        horizon = now - self.forget_after
        while self.last:
            run, (_, seen) = next(iter(self.last.items()))
            if max(seen, self._alive_since) >= horizon:
                break
            del self.last[run]


class Hub:
    """The connections of this process and the delivery of events to them.

    Delivery is one pass over the connections with two memos per event: allowed or not (and
    shown the actor or not, ``Event.actor_guard``) per distinct set of tokens (connections of
    one user, or from one cached principal, share one frozenset) and matching or not per
    subscribed prefix; the JSON is encoded once per event and variant (with or without the
    actor). ``PrincipalChange`` messages (same bus, same sequence numbers) update the tokens
    of live connections and tell ``principal_listeners`` (the principal cache) to forget.
    ``lookup(environ, site, still_wanted)`` (the service's principal lookups: a Principal, or
    a Deferred of one) finds the principals of live connections again after lost messages.
    """

    def __init__(self, lookup=None):
        self.subscribers = set()
        self.sequences = Sequences()
        self.principal_listeners = []  # f(userids, tokens, site): forget cached lookups
        self.lookup = lookup
        self._credentials = weakref.WeakValueDictionary()  # cache key -> Credentials
        self.recomputed = 0  # connections whose principal was looked up again after a gap
        self.batch = None  # begin()/flush() around a delivery (websocket.sending.Batch)
        self.delivered = 0
        self.gaps = 0
        self.dropped = 0  # duplicate or late events
        self.heartbeats = 0  # publisher heartbeats heard
        self.heartbeat_gaps = 0  # gaps found by a heartbeat (no event followed the loss)
        self.jumps = 0  # events whose sequence number jumped further than any publisher can
        self._jump_logged = {}  # instance -> when its last jump was logged

    def add(self, subscriber):
        self.subscribers.add(subscriber)

    def remove(self, subscriber):
        self.subscribers.discard(subscriber)

    def __len__(self):
        return len(self.subscribers)

    def deliver(self, event):
        """Send ``event`` to every subscriber that may see it; return how many got it.

        When events of its publisher were lost just before it, every subscriber is first
        told how many (``announce_gap``); a duplicate or late event is dropped. A
        ``PrincipalChange`` is applied (``change_principals``) instead of sent, a heartbeat
        checked (``heard``).
        """
        if getattr(event, "kind", "event") == "heartbeat":
            return self.heard(event)
        missed = self.sequences.missed_before(event)
        if missed == Sequences.TOO_FAR:
            self.jumps += 1
            self._warn_jump(event)
            return 0
        if missed is None:
            self.dropped += 1
            log.debug("dropped event {seq} of {instance}: already past it", seq=event.seq,
                      instance=event.instance)
            return 0
        if missed:
            self.announce_gap(event.instance, missed)
        if getattr(event, "kind", "event") == "principals":
            self.change_principals(event)
            return 0
        # No garbage collection in the middle of a delivery: a full pass over a process with
        # thousands of connections takes a few hundred milliseconds, all of it added to the
        # event's latency; it runs right after instead, when it is due.
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            if self.batch is None:
                return self._deliver(event)
            self.batch.begin()
            try:
                return self._deliver(event)
            finally:
                self.batch.flush()
        finally:
            if collecting:
                gc.enable()

    def heard(self, heartbeat):
        """A publisher run's heartbeat (its last sequence number): when this hub saw fewer of
        the run's events, the rest were lost, and every subscriber is told (a gap) now rather
        than at the run's next event, which may never come. Never sent to browsers; returns 0."""
        self.heartbeats += 1
        missed = self.sequences.missed_by(heartbeat)
        if missed == Sequences.TOO_FAR:
            self.jumps += 1
            self._warn_jump(heartbeat)
        elif missed:
            self.heartbeat_gaps += 1
            log.info("the {which} heartbeat of instance {instance} counts {missed} event(s) more"
                     " than arrived here", which="final" if heartbeat.final else "periodic",
                     instance=heartbeat.instance, missed=missed)
            self.announce_gap(heartbeat.instance, missed)
        return 0

    def _deliver(self, event):
        guard, path = event.guard, event.path
        allowed = {}  # tokens -> 0: not allowed, 1: allowed without the actor, 2: with it
        matching = {}  # prefix -> bool
        payloads = [None, None, None]  # encoded once per variant
        count = 0
        for subscriber in list(self.subscribers):
            tokens = subscriber.tokens
            ok = allowed.get(tokens)
            if ok is None:
                ok = allowed[tokens] = (0 if tokens.isdisjoint(guard)
                                        else 2 if event.shows_actor(tokens) else 1)
            if not ok:
                continue
            for prefix in subscriber.paths:
                hit = matching.get(prefix)
                if hit is None:
                    hit = matching[prefix] = path_matches(prefix, path)
                if hit:
                    break
            else:
                continue
            payload = payloads[ok]
            if payload is None:
                payload = payloads[ok] = json.dumps(event.public(with_actor=ok == 2),
                                                    separators=(",", ":")).encode("utf-8")
            subscriber.send(payload)
            count += 1
        self.delivered += count
        return count

    def credentials(self, key, environ, site):
        """The one Credentials object of cache key ``key`` while a connection holds it."""
        found = self._credentials.get(key)
        if found is None:
            found = self._credentials[key] = Credentials(environ, site)
        return found

    def change_principals(self, change):
        """Apply a PrincipalChange to the connections of its site (``change.site``; every
        site when it names none, see PrincipalChange): new tokens for the live connections
        of changed users; connections of removed users (or holding a removed group's token)
        are closed, so that they reconnect as whoever their credentials make them now.

        A logout or a new password (``logged_out``) closes every connection of that user in
        that site, whatever credentials it was opened with: Plone keeps no server-side
        session to tell which ones the logout ended (an __ac cookie stays valid until the
        secret rotates), and the user's other tabs reconnect at no cost but a lookup."""
        removed_tokens = frozenset(f"user:{pid}" for pid in change.removed)
        changed = set(change.users) | set(change.removed) | set(change.logged_out)
        site = change.site or None
        for listener in self.principal_listeners:
            listener(changed, removed_tokens, site)
        interned = {}
        updated = closed = 0
        for subscriber in list(self.subscribers):
            if site is not None and subscriber.site != site:
                continue  # the same user id in another site may be someone else
            userid = subscriber.userid
            if userid in change.removed or not removed_tokens.isdisjoint(subscriber.tokens):
                closed += 1
                self._close(subscriber, "your user or one of its groups was removed")
            elif userid is not None and userid in change.logged_out:
                closed += 1
                self._close(subscriber, "your user logged out or changed its password:"
                                        " reconnect to authenticate again")
            elif userid in change.users and site is not None:
                tokens = change.users[userid]
                subscriber.tokens = interned.setdefault(tokens, tokens)
                updated += 1
        log.info("principals changed: {users} user(s); {updated} connection(s) updated, {closed}"
                 " closed", users=len(changed), updated=updated, closed=closed)

    def _close(self, subscriber, reason):
        if subscriber.close is not None:
            subscriber.close(REAUTHENTICATE, reason)
        self.remove(subscriber)

    def lost_messages(self):
        """Some bus messages were lost: principal changes among them cannot be applied, so
        cached lookups go and every live connection's principal is looked up again."""
        for listener in self.principal_listeners:
            listener(None, frozenset(), None)
        self.recompute()

    def recompute(self):
        """Look up the principal of every live connection again, once per distinct
        credentials (the lookups batch them, as for handshakes): the same user gets the
        tokens it has now (a lost change may have lowered them); credentials that now name
        someone else (a lost logout: Anonymous) or fail close the connection with 4001."""
        if self.lookup is None:
            return
        groups = {}
        for subscriber in self.subscribers:
            if subscriber.credentials is not None:
                groups.setdefault(subscriber.credentials, []).append(subscriber)
        for credentials, members in groups.items():
            found = self.lookup(credentials.environ, credentials.site,
                                lambda members=members: any(s in self.subscribers for s in members))
            if isinstance(found, Deferred):
                found.addCallbacks(self._retoken, self._not_found, callbackArgs=(members,),
                                   errbackArgs=(members,))
            else:
                self._retoken(found, members)

    def _retoken(self, principal, members):
        for subscriber in members:
            if subscriber not in self.subscribers:
                continue  # gone, or closed by a change meanwhile
            self.recomputed += 1
            if principal.userid != subscriber.userid or principal.site_path != subscriber.site:
                self._close(subscriber, "your credentials no longer name the user this"
                                        " connection was opened for: reconnect")
            else:
                subscriber.tokens = principal.tokens

    def _not_found(self, failure, members):
        if failure.check(Gone):
            return None  # every connection of these credentials left meanwhile
        log.info("closing {n} connection(s) whose principal could not be looked up again:"
                 " {why}", n=len(members), why=failure.getErrorMessage())
        for subscriber in members:
            if subscriber in self.subscribers:
                self.recomputed += 1
                self._close(subscriber, "your credentials could not be checked again: reconnect")
        return None

    def _warn_jump(self, event):
        """At most once a minute per publisher name: a hostile peer could flood the log."""
        now = time.monotonic()
        if now - self._jump_logged.get(event.instance, -60.0) >= 60.0:
            if len(self._jump_logged) > 1024:
                self._jump_logged.clear()
            self._jump_logged[event.instance] = now
            log.warn("dropped a bus message of {instance} numbered {seq}: a jump no publisher"
                     " makes ({count} so far)", instance=event.instance, seq=event.seq,
                     count=self.jumps)

    def announce_gap(self, instance, missed):
        """Tell every subscriber, whatever its paths and tokens, that ``missed`` events of
        ``instance`` were lost: the message names no content, only that a reload is due."""
        self.gaps += 1
        self.lost_messages()
        log.info("lost {missed} event(s) from instance {instance} on the bus", missed=missed,
                 instance=instance)
        payload = json.dumps({"type": "gap", "instance": instance, "missed": missed}).encode("utf-8")
        for subscriber in list(self.subscribers):
            subscriber.send(payload)
