"""Who is connecting, without a Zope publish per handshake (reactor thread unless noted).

``PrincipalCache``: the principals Zope answered, keyed by a hash of what decides who a
handshake is (``credentials_key``): the site, the ``Authorization`` and ``Cookie`` headers (what
Plone's PAS plugins read: the __ac session cookie, Basic auth, plone.restapi's JWT bearer token
and cookie), the client address Zope sees (Zope user ``domains`` and IP-based role plugins give
roles by address) and the configured ``principal-cache-header`` headers. Anonymous handshakes
from one address share a key: 10,000 of them cost one lookup per TTL. Entries
live ``ttl`` seconds, at most ``size`` of them (least recently used go first), and go at once
when a ``PrincipalChange`` from any instance names their user (roles, groups, password, logout,
removal; ``drop_users``) or when the bus lost messages (``clear``: a lost change cannot be
applied). Credentials themselves are not kept: the key is a digest.

``PrincipalLookups``: the lookups Zope must do. Handshakes with the same credentials wait on one
lookup (single flight); distinct ones queue on the reactor and go to the publisher pool in
batches, at most ``lanes`` batches at once, each batch stopping after ``BATCH_SECONDS``: a page
request queued in the pool meanwhile waits for one short batch, not for a reconnect storm.
"""

import hashlib
import time
from collections import OrderedDict, deque
from dataclasses import replace

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from .auth import resolve_principal

#: A batch of lookups in a publisher thread stops taking more after this long.
BATCH_SECONDS = 0.02
#: ... or after this many lookups.
BATCH_SIZE = 32


def header_keys(headers):
    """The environ keys of request header names: "X-Remote-User" -> "HTTP_X_REMOTE_USER"."""
    return tuple("HTTP_" + name.strip().upper().replace("-", "_") for name in headers)


#: What decides who a handshake is, besides ``extra`` headers. The client address Zope sees
#: is derived from REMOTE_ADDR and, from a trusted proxy only (the environ drops it from
#: anyone else), X-Forwarded-For with Zope's own trusted-proxy list: keying on both gives
#: every address Zope could see its own entry (at worst two chains naming one client are
#: two lookups, never two clients one).
IDENTITY_KEYS = ("HTTP_AUTHORIZATION", "HTTP_COOKIE", "REMOTE_ADDR", "HTTP_X_FORWARDED_FOR")


def credentials_key(environ, site, extra=()):
    """The cache key of a handshake: a digest of the site, its credentials, its client
    address and the ``extra`` environ keys (see ``header_keys``)."""
    digest = hashlib.sha256()
    for part in (site, *(environ.get(key, "") for key in IDENTITY_KEYS + tuple(extra))):
        digest.update(part.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
    return digest.digest()


class PrincipalCache:
    """key -> Principal for ``ttl`` seconds, ``size`` entries at most (reactor thread only)."""

    def __init__(self, ttl=60.0, size=10000, clock=time.monotonic):
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self.entries = OrderedDict()  # key -> (expires, principal)
        self.interned = {}  # tokens -> the one frozenset of those tokens (shared by connections)
        self.hits = self.misses = 0

    @property
    def enabled(self):
        return self.ttl > 0 and self.size > 0

    def get(self, key):
        entry = self.entries.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                self.entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            del self.entries[key]
        self.misses += 1
        return None

    def put(self, key, principal):
        if not self.enabled:
            return
        self.entries[key] = (self.clock() + self.ttl, principal)
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)

    def intern(self, tokens):
        """One shared frozenset per distinct set of tokens (memory; a fast dict key in fan-out)."""
        tokens = frozenset(tokens)
        shared = self.interned.get(tokens)
        if shared is None:
            if len(self.interned) > 4 * max(self.size, 1024):
                self.interned.clear()
            shared = self.interned[tokens] = tokens
        return shared

    def drop_users(self, userids, tokens=(), site=None):
        """Forget the entries of these users, and of anyone holding one of ``tokens``, in
        ``site`` (a site path; None: in every site)."""
        userids, tokens = set(userids), frozenset(tokens)
        stale = [key for key, (_, principal) in self.entries.items()
                 if (site is None or principal.site_path == site)
                 and (principal.userid in userids or not tokens.isdisjoint(principal.tokens))]
        for key in stale:
            del self.entries[key]
        return len(stale)

    def clear(self):
        self.entries.clear()

    def __len__(self):
        return len(self.entries)


class _Lookup:
    """One pending lookup: its key, the handshake environ and site, and who waits for it."""

    __slots__ = ("key", "environ", "site", "waiters", "running", "stale")

    def __init__(self, key, environ, site):
        self.key, self.environ, self.site = key, environ, site
        self.waiters = []  # (deferred, still_wanted)
        self.running = False
        self.stale = False  # a principal changed while Zope was looking this up

    def wanted(self):
        return any(still_wanted() for _, still_wanted in self.waiters)


class PrincipalLookups:
    """Principals for handshakes: from the cache, or looked up by Zope in batches.

    ``lookup(environ, site, still_wanted)`` returns a Principal at once (a cache hit) or a
    Deferred firing with one (or failing with AuthenticationFailed). ``still_wanted()`` is
    asked on the reactor before a queued lookup goes to Zope: when no waiter wants it any
    more (clients gone), Zope is not asked.
    """

    def __init__(self, reactor, pool, cache, lanes=1, resolve=resolve_principal, headers=()):
        self.reactor = reactor
        self.extra = header_keys(headers)  # environ keys of principal-cache-header
        self.pool = pool
        self.cache = cache
        self.lanes = max(1, lanes)
        self.resolve = resolve
        self.app = None
        self.pending = {}  # key -> _Lookup (queued or running)
        self.queue = deque()
        self.running = 0
        self.resolved = 0  # lookups Zope did

    def lookup(self, environ, site, still_wanted=lambda: True):
        key = credentials_key(environ, site, self.extra)
        principal = self.cache.get(key) if self.cache.enabled else None
        if principal is not None:
            return principal
        d = Deferred()
        pending = self.pending.get(key)
        if pending is None or not self.cache.enabled:
            pending = _Lookup(key, environ, site)
            if self.cache.enabled:
                self.pending[key] = pending
            self.queue.append(pending)
        pending.waiters.append((d, still_wanted))
        self._dispatch()
        return d

    def forget(self, userids, tokens=(), site=None):
        """Hub listener: a PrincipalChange of ``site`` (None: every site) named ``userids``
        (and removed groups' ``tokens``), or, with ``userids`` None, bus messages were lost.
        Lookups running now may have read the old roles: their answers still go to their
        waiters, but are not cached, and later handshakes start a lookup of their own."""
        for pending in self.pending.values():
            pending.stale = pending.running
        self.pending.clear()
        if userids is None:
            self.cache.clear()
        else:
            self.cache.drop_users(userids, tokens, site)

    # Batches (reactor thread, except _run_batch)

    def _dispatch(self):
        while self.running < self.lanes and self.queue:
            batch = []
            while self.queue and len(batch) < BATCH_SIZE:
                pending = self.queue.popleft()
                if pending.wanted():
                    batch.append(pending)
                else:
                    self._finish(pending, None)
            if not batch:
                return
            for pending in batch:
                pending.running = True
            self.running += 1
            d = deferToThreadPool(self.reactor, self.pool, self._run_batch, self.app,
                                  [(p.environ, p.site, p.wanted) for p in batch])
            d.addBoth(self._batch_done, batch)

    def _run_batch(self, app, items):
        """Publisher thread: resolve items until the batch's time is up; [(ok, value)].

        Each item is checked again here (``wanted`` reads the protocols' state, a plain
        attribute the reactor sets): its clients may have left while it waited for a thread.
        """
        results = []
        began = time.monotonic()
        for environ, site, wanted in items:
            if results and time.monotonic() - began > BATCH_SECONDS:
                break
            if not wanted():
                results.append((False, Gone()))
                continue
            try:
                results.append((True, self.resolve(app, environ, site)))
            except Exception as exc:  # handed to the waiters, one by one
                results.append((False, exc))
        return results

    def _batch_done(self, results, batch):
        self.running -= 1
        if not isinstance(results, list):  # the pool failed us (stopping): fail every waiter
            results = [(False, results.value)] * len(batch)
        self.resolved += len(results)
        for pending in batch:
            pending.running = False
        for pending, (ok, value) in zip(batch, results):
            if pending.stale:  # it may have read the roles from before the change: again
                pending.stale = False
                self.queue.append(pending)
            elif ok:
                principal = replace(value, tokens=self.cache.intern(value.tokens))
                if self.pending.get(pending.key) is pending:
                    self.cache.put(pending.key, principal)
                self._finish(pending, principal)
            else:
                self._finish(pending, value)
        for pending in reversed(batch[len(results):]):  # the batch's time was up: next turn
            self.queue.appendleft(pending)
        self._dispatch()

    def _finish(self, pending, outcome):
        if self.pending.get(pending.key) is pending:
            del self.pending[pending.key]
        waiters, pending.waiters = pending.waiters, []
        for d, _ in waiters:
            if outcome is None:
                d.errback(Gone())
            elif isinstance(outcome, BaseException):
                d.errback(outcome)
            else:
                d.callback(outcome)


class Gone(Exception):
    """Every handshake waiting for a lookup left before a publisher thread got to it."""
