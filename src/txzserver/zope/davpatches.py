"""Small fixes to Zope's ``webdav`` package that litmus proves necessary.

Applied once by ``startup.start_zope`` (``apply()`` is idempotent). Each is listed
below with the litmus test or the integration test that shows it.

1. The ``If`` header (RFC 4918 section 10.4). Zope's ``Resource.dav__simpleifhandler`` only
   looks for a lock token the resource holds and ignores everything else, so a PUT whose
   condition is false still succeeds: ``(<DAV:no-lock>)``, a wrong entity tag, a corrupt
   token next to ``(Not <DAV:no-lock>)``. Here the header is evaluated: the lists that apply
   to the resource (untagged ones, and ones tagged with its URL) must have one that is true
   (else 412 Precondition Failed), and a locked resource needs one of its lock tokens in
   the header (else 423 Locked). litmus ``locks``: fail_cond_put, cond_put_corrupt_token,
   fail_complex_cond_put, fail_cond_put_unlocked.
2. Members added to a locked collection. Zope's LOCK with Depth: infinity locks the members
   that exist at that moment; a member created (PUT, MKCOL, COPY, MOVE) in the collection
   later is not locked, so anyone could PROPPATCH it, COPY over it or MOVE it out, a LOCK
   refresh through it fails (412), and UNLOCK of the collection fails (207, it finds a
   member without the token) and leaves the collection locked. Here a subscriber gives a
   new member the collection's depth-infinity locks (and takes them away when it moves
   out), as RFC 4918 section 7.5 asks. litmus ``locks``: notowner_modify (after
   lock_collection), indirect_refresh.

3. A large PUT onto a Plone File. plone.app.contenttypes' ``File.PUT`` stores
   ``NamedBlobFile(data=infile.read())``: the whole body in memory (a 1 GB PUT grew the
   server by over 1 GB). Here the body file is copied into the blob in 1 MiB blocks. Not
   a litmus finding: the 1 GB PUT test (``tests/integration/test_webdav.py``, flat memory)
   proves it.

4. Small protocol points: MOVE without a Destination header got 403 Forbidden (Zope pops
   a name off an empty path and fails the id check); it gets 400 Bad Request, as COPY
   does. OPTIONS answers ``MS-Author-Via: DAV`` like ZServer did, which Microsoft Office
   and Windows Web Folders look for before they use WebDAV.

5. Hostile bodies and headers (any client may send them;
   ``tests/integration/test_webdav_hostile.py``): a LOCK body Zope's protected parser
   refuses (a DTD, external or expanding entities) or that lacks lockinfo/lockscope/locktype
   raised ValueError/IndexError, a 500; it gets 400 Bad Request.
   COPY and MOVE resolved a Destination on another host as a path on this one (COPY to
   ``http://evil.example.org/x`` made ``/x`` here); a Destination whose scheme and host
   differ from the request's gets 502 Bad Gateway (RFC 4918 9.8.4, 9.9.4).

Not fixed (documented in docs/webdav.md): Zope has exclusive write locks only, so a shared
LOCK gets 403 (litmus ``locks``: lock_shared, and the seven tests after it are skipped).
"""

import functools
import re
from urllib.parse import unquote, urlsplit
from xml.parsers.expat import ExpatError

from zExceptions import BadRequest

_TOKEN = re.compile(r"<([^>]*)>|\[([^\]]*)\]|(\()|(\))|\b(not)\b", re.IGNORECASE)
NO_LOCK = "DAV:no-lock"

_originals = {}
_SUBSCRIBED = None


def parse_if(header):
    """``[(resource or None, [(negated, kind, value), ...]), ...]``: one entry per list.

    ``kind`` is "token" (a state token such as ``opaquelocktoken:...``) or "etag" (the
    entity tag as sent, quotes included). A resource tag applies to the lists after it.
    Characters outside the grammar are skipped, as Zope's own parser does.
    """
    lists = []
    resource = None
    current = None
    negated = False
    for match in _TOKEN.finditer(header):
        coded, etag, opening, closing, not_ = match.groups()
        if opening is not None:
            current, negated = [], False
        elif closing is not None:
            if current:
                lists.append((resource, current))
            current = None
        elif current is None:
            if coded is not None:
                resource = coded
        elif not_ is not None:
            negated = True
        else:
            kind, value = ("token", coded) if coded is not None else ("etag", etag)
            current.append((negated, kind, value))
            negated = False
    return lists


def _lock_token(value):
    """The token as Zope stores it: what follows the URI scheme (``opaquelocktoken:``)."""
    return value[value.find(":") + 1:]


def _bare_etag(value):
    value = (value or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _same_path(tag, path):
    from webdav.common import urlbase
    return unquote(urlbase(tag)).rstrip("/") == unquote(path).rstrip("/")


def _condition_holds(ob, etag, condition, etags_apply):
    negated, kind, value = condition
    if kind == "token":
        held = value != NO_LOCK and bool(ob.wl_hasLock(_lock_token(value)))
    elif not etags_apply:
        return True
    else:
        held = etag is not None and _bare_etag(value) == _bare_etag(etag)
    return held != negated


def simpleifhandler(self, request, response, method="PUT", col=0, url=None, refresh=0):
    """Zope's ``dav__simpleifhandler`` with the If header evaluated (see the module doc).

    Returns None when the resource is not lockable or there is no If header on an
    unlocked resource, 0 when the header neither applies to nor submits a token of the
    resource, else 1; raises PreconditionFailed (412) when no list that applies to the
    resource is true, Locked (423) when it is locked and none of its tokens is submitted. With ``col`` the
    check is for the collection of the request URI: untagged lists then apply to it for
    their lock tokens, but their entity tags describe the member and are not compared.
    """
    from OFS.Lockable import wl_isLockable
    from webdav.common import Locked, PreconditionFailed, urlbase, urlfix

    if not wl_isLockable(self):
        return None
    locked = self.wl_isLocked()
    header = request.get_header("If", None)
    if not header:
        if locked:
            raise Locked("Resource is locked.")
        return None
    if url is None:
        url = urlfix(request["URL"], method)
    path = urlbase(url)
    if col:
        path = path[:path.rfind("/") + 1]

    lists = parse_if(header)
    applying = [(resource is not None or not col, conditions) for resource, conditions in lists
                if resource is None or _same_path(resource, path)]
    etag = self.http__etag(readonly=1) if hasattr(self, "http__etag") else None
    if applying and not any(all(_condition_holds(self, etag, c, etags_apply) for c in conditions)
                            for etags_apply, conditions in applying):
        raise PreconditionFailed("Condition failed.")
    # RFC 4918 10.4.1: a lock token is submitted wherever it appears in the header (it may
    # be tagged with the URL of the locked collection), given the header is true.
    tokens = {_lock_token(value) for _, conditions in lists
              for negated, kind, value in conditions
              if kind == "token" and not negated and value != NO_LOCK
              and self.wl_hasLock(_lock_token(value))}
    if locked and not tokens:
        raise Locked("Resource is locked and its lock token was not submitted.")
    if refresh:
        for token in tokens:
            self.wl_getLock(token).refresh()
    if not applying and not tokens:
        return 0
    return 1


def inherit_collection_locks(ob, event):
    """Subscriber (IWriteLock, IObjectMovedEvent): a member added to a collection under a
    depth-infinity lock gets that lock (as Zope's LOCK gives it to the members that exist
    when it is taken); a member leaving a collection loses the collection's locks."""
    from OFS.interfaces import IWriteLock

    old, new = event.oldParent, event.newParent
    if old is not None and IWriteLock.providedBy(old) and old.wl_isLocked():
        for token in list(ob.wl_lockTokens()) if hasattr(ob, "wl_lockTokens") else ():
            if old.wl_hasLock(token):
                _apply_lock(ob, token, None)
    if new is not None and IWriteLock.providedBy(new) and new.wl_isLocked():
        for token, lock in new.wl_lockItems():
            if str(lock.getDepth()).lower() == "infinity":
                _apply_lock(ob, token, lock)


def _apply_lock(ob, token, lock):
    """Set (or with ``lock`` None remove) ``token`` on ``ob`` and its members."""
    from OFS.interfaces import IWriteLock

    if IWriteLock.providedBy(ob):
        if lock is None:
            ob.wl_delLock(token)
        elif not ob.wl_hasLock(token):
            ob.wl_setLock(token, lock)
    for member in ob.objectValues() if hasattr(ob, "objectValues") else ():
        _apply_lock(member, token, lock)


def _move_needs_destination(move):
    @functools.wraps(move)
    def MOVE(self, REQUEST, RESPONSE):
        if not REQUEST.get_header("Destination", "").strip():
            raise BadRequest("MOVE needs a Destination header.")
        return move(self, REQUEST, RESPONSE)
    return MOVE


def _bad_lock_body_is_400(parse):
    @functools.wraps(parse)
    def parse_lockinfo(self, data, dav="DAV:"):
        try:
            return parse(self, data, dav)
        except (ValueError, IndexError, AttributeError, ExpatError) as exc:
            raise BadRequest(f"LOCK body is not a usable DAV:lockinfo: {exc}") from exc
    return parse_lockinfo


def _destination_on_this_server(method):
    @functools.wraps(method)
    def copy_or_move(self, REQUEST, RESPONSE):
        destination = urlsplit(REQUEST.get_header("Destination", "").strip())
        if destination.netloc:
            own = urlsplit(REQUEST.get("SERVER_URL", ""))
            if (destination.scheme.lower(), destination.netloc.lower()) != (
                    own.scheme.lower(), own.netloc.lower()):
                RESPONSE.setStatus(502)
                RESPONSE.setHeader("Content-Type", "text/plain; charset=utf-8")
                return (f"Destination is on another server ({destination.scheme}://"
                        f"{destination.netloc}); this one is {own.scheme}://{own.netloc}\n")
        return method(self, REQUEST, RESPONSE)
    return copy_or_move


def _options_author_via(options):
    @functools.wraps(options)
    def OPTIONS(self, REQUEST, RESPONSE):
        result = options(self, REQUEST, RESPONSE)
        RESPONSE.setHeader("MS-Author-Via", "DAV")
        return result
    return OPTIONS


#: Bytes of the body's first line that File.PUT looks at for an RFC 822 style header.
FIRST_LINE_LIMIT = 64 * 1024
COPY_BLOCK = 1 << 20


def streaming_file_put(self, REQUEST=None, RESPONSE=None):
    """plone.app.contenttypes ``File.PUT`` that copies the body into the blob in blocks."""
    import shutil

    from plone.app.contenttypes import content
    from plone.namedfile.file import NamedBlobFile
    from zope.lifecycleevent import modified

    request = REQUEST if REQUEST is not None else self.REQUEST
    response = RESPONSE if RESPONSE is not None else request.response
    infile = request.get("BODYFILE", None)
    first_line = infile.readline(FIRST_LINE_LIMIT)
    infile.seek(0)
    if content.headerRE.match(content.safe_text(first_line)):
        return super(content.File, self).PUT(REQUEST=request, RESPONSE=response)
    self.dav__init(request, response)
    self.dav__simpleifhandler(request, response, refresh=1)
    blob = NamedBlobFile(filename=str(request["PATH_INFO"].split("/")[-1]))
    with blob.open("w") as out:
        shutil.copyfileobj(infile, out, COPY_BLOCK)
    self.file = blob
    modified(self)
    return response


def _plone_file_class():
    try:
        from plone.app.contenttypes.content import File
    except ImportError:  # Zope without Plone
        return None
    return File


def _subscribed():
    from OFS.interfaces import IWriteLock
    from zope.lifecycleevent.interfaces import IObjectMovedEvent
    return (IWriteLock, IObjectMovedEvent)


def apply():
    """Install the fixes (once): the If handler on ``webdav.Resource.Resource``, the
    lock-inheriting subscriber in the global component registry, the streaming File.PUT."""
    from webdav.davcmds import Lock
    from webdav.Resource import Resource
    from zope.component import provideHandler

    global _SUBSCRIBED
    _SUBSCRIBED = _subscribed()

    if _originals:
        return
    _originals.update({name: getattr(Resource, name)
                       for name in ("dav__simpleifhandler", "MOVE", "COPY", "OPTIONS")})
    _originals["Lock.parse"] = Lock.parse
    Resource.dav__simpleifhandler = simpleifhandler
    Resource.MOVE = _destination_on_this_server(_move_needs_destination(Resource.MOVE))
    Resource.COPY = _destination_on_this_server(Resource.COPY)
    Lock.parse = _bad_lock_body_is_400(Lock.parse)
    Resource.OPTIONS = _options_author_via(Resource.OPTIONS)
    provideHandler(inherit_collection_locks, _SUBSCRIBED)
    plone_file = _plone_file_class()
    if plone_file is not None:
        _originals["File.PUT"] = plone_file.PUT
        streaming_file_put.__dict__.update(plone_file.PUT.__dict__)  # Zope's publish marks
        plone_file.PUT = streaming_file_put


def revert():
    """Restore Zope's own behaviour (tests; the waitress comparison runs stock Zope)."""
    from webdav.davcmds import Lock
    from webdav.Resource import Resource
    from zope.component import getGlobalSiteManager

    for name, method in _originals.items():
        if name == "File.PUT":
            _plone_file_class().PUT = method
        elif name == "Lock.parse":
            Lock.parse = method
        else:
            setattr(Resource, name, method)
    if _originals:
        getGlobalSiteManager().unregisterHandler(inherit_collection_locks, _SUBSCRIBED)
    _originals.clear()
