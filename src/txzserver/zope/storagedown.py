"""Fail fast while the database is down: writes answer 503 at once, reads served from the ZODB
caches go on, an uncached read fails within ``storage-wait`` instead of 30 s or more.

Left alone, a ZEO client waits up to its ``wait-timeout`` (30 s) for the server to come back
at every load the caches cannot answer and at every new oid, and Zope retries the request
(``ClientDisconnected`` is a TransientError) three times with sleeps of up to 1, 2 and 4 s: a
write held a publisher thread for minutes. Here, while a database is known down (ZEO's own
``is_connected()`` flag, or the readiness probe's last answer for RelStorage, which only finds
out by trying), a request with a method that writes is answered 503 with ``Retry-After`` and
the reason before Zope sees it; a request that meets a lost storage anyway (a GET that writes,
an uncached object, PostgreSQL gone before the probe saw it) gets the same 503 once the
storage's own exception reaches us, without Zope's retries. When the storage is back, nothing
is left to undo: the next write goes through.
"""

import logging
import sys

from ZPublisher import HTTPResponse
from ZPublisher.interfaces import IPubBeforeAbort, IPubStart
from zope.component import provideHandler
from zope.globalrequest import getRequest

from . import relstoragepatches
from .health import databases, disconnected

log = logging.getLogger("txzserver.storage")

#: methods that do not write (RFC 9110 9.2.1; WebDAV's read methods): never refused up front.
READS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "REPORT"})
#: seconds a client is told to wait before it tries a refused write again.
RETRY_AFTER = 10
#: environ key: the 503 of this request has been logged (by ``StorageDown.on_abort``)
LOGGED = "txzserver.storage_down_logged"


def storage_errors(found=None):
    """The exceptions a storage raises when it has lost its server: ZEO's ClientDisconnected
    and, for RelStorage, its driver's ``disconnected_exceptions`` (psycopg2's OperationalError
    and InterfaceError). ``found``: {name: ZODB.DB}, default the databases Zope opened."""
    from ZEO.Exceptions import ClientDisconnected
    errors = {ClientDisconnected}
    for db in (found if found is not None else databases()).values():
        adapter = getattr(db.storage, "_adapter", None)  # RelStorage's; no public name for it
        errors.update(getattr(getattr(adapter, "driver", None), "disconnected_exceptions", ()))
    return tuple(errors)


def set_zeo_wait(seconds, found=None):
    """Make every ZEO client wait at most ``seconds`` for its server when disconnected (its
    ``wait-timeout``, read at each call; it does not bound a call to a connected server).
    Returns the names of the databases changed."""
    changed = []
    for name, db in sorted((found if found is not None else databases()).items()):
        runner = getattr(db.storage, "_server", None)  # ZEO's ClientRunner: no setter for it
        if runner is not None and hasattr(runner, "timeout") and hasattr(db.storage, "is_connected"):
            runner.timeout = seconds
            changed.append(name)
    return changed


def in_request():
    """Whether this thread publishes a request (not the readiness probe, not a script)."""
    return getRequest() is not None


class StorageDown:
    """Which databases are down, asked from any thread: ZEO's flag (at once) and ``known``,
    a callable giving {name: reason} of what the readiness probe found down (RelStorage)."""

    def __init__(self, known=dict, disconnected=disconnected, errors=()):
        self.known = known
        self.disconnected = disconnected
        self.errors = errors

    def reasons(self):
        """{name: reason} of the databases down now; empty while all is well."""
        found = {name: "not connected to its storage server" for name in self.disconnected()}
        return found or dict(self.known())

    def no_retry(self, event):
        """IPubStart handler: while a database is down, Zope must not retry a request that
        met it (three retries, sleeps of up to 7 s, each waiting for the storage again)."""
        if self.reasons():
            event.request.retry_max_count = 0

    def on_abort(self, event):
        """IPubBeforeAbort handler: a request that met a lost storage, answered by an error
        page (Plone's, its status 503 by ``status_codes``), gets Retry-After and a log line."""
        error = event.exc_info[1]
        if isinstance(error, self.errors) and not event.retry:
            event.request.response.setHeader("Retry-After", str(RETRY_AFTER))
            event.request.environ[LOGGED] = True
            log.warning("503 for %s %s: the database is unavailable (%s)",
                        event.request.method, event.request.get("PATH_INFO", ""),
                        brief(error))


class WriteGuard:
    """WSGI middleware around Zope's app: the 503s described in the module docstring."""

    def __init__(self, app, down, errors):
        self.app = app
        self.down = down
        self.errors = errors

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method not in READS:
            reasons = self.down.reasons()
            if reasons:
                return self.refuse(environ, start_response, "writes are refused while the"
                                   f" database is unavailable ({describe(reasons)})")
        try:
            return self.app(environ, start_response)
        except self.errors as exc:
            return self.refuse(environ, start_response, "the database is unavailable"
                               f" ({brief(exc)})", sys.exc_info())

    def refuse(self, environ, start_response, reason, exc_info=None):
        if not environ.get(LOGGED):
            log.warning("503 for %s %s: %s", environ.get("REQUEST_METHOD"),
                        environ.get("PATH_INFO", ""), reason)
        body = (f"503 Service Unavailable: {reason}. Pages this server has in its cache are"
                f" still served; try again in {RETRY_AFTER} s.\n").encode()
        start_response("503 Service Unavailable", [
            ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Retry-After", str(RETRY_AFTER)), ("Cache-Control", "no-store")], exc_info)
        return [body]


def brief(error):
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def describe(reasons):
    return "; ".join(f"{name}: {reason}" for name, reason in sorted(reasons.items()))


def guard(app, storage_wait, known=dict):
    """Zope's WSGI ``app`` behind the WriteGuard, with ZEO's wait cut to ``storage_wait``
    seconds and Zope's retries off while a database is down. Call once Zope has started (it
    reads the databases Zope opened). ``known``: see StorageDown."""
    errors = storage_errors()
    down = StorageDown(known, errors=errors)
    changed = set_zeo_wait(storage_wait)
    if changed:
        log.info("ZEO clients wait at most %gs for a lost server: %s", storage_wait,
                 ", ".join(changed))
    for error in errors:  # an error page for a lost storage (Plone's) says 503 as ours does
        HTTPResponse.status_codes[error.__name__.lower()] = 503
    provideHandler(down.no_retry, (IPubStart,))
    provideHandler(down.on_abort, (IPubBeforeAbort,))
    relstoragepatches.apply(in_request)
    return WriteGuard(app, down, errors)
