"""Who is connecting: ask Zope once per handshake, in the publisher thread pool.

The handshake's own cookies and Authorization header are published to the site's
``@@txzserver-principal`` view, so every PAS plugin Plone uses (the __ac cookie, Basic
auth, plone.restapi's JWT) applies exactly as for a page request. Invalid or expired
credentials make PAS fall back to Anonymous: such clients connect as Anonymous.

Volto keeps its JWT in the ``auth_token`` cookie and sends it as ``Authorization: Bearer``
on each of its API calls; plone.restapi's PAS plugin reads only that header, and a browser's
WebSocket handshake can carry cookies but no header of its own. So a handshake without an
Authorization header that has the ``auth_token`` cookie is looked up with the cookie's token
as its Bearer header: a Volto session connects as its user, as the __ac cookie does for
Classic UI (the handshake's origin check applies to both).
"""

import io
import json
from dataclasses import dataclass

from ..transfer import close_body

PRINCIPAL_VIEW = "@@txzserver-principal"
DROPPED = ("HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_SEC_WEBSOCKET_KEY", "HTTP_SEC_WEBSOCKET_VERSION",
           "HTTP_SEC_WEBSOCKET_EXTENSIONS", "HTTP_SEC_WEBSOCKET_PROTOCOL")


class AuthenticationFailed(Exception):
    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    userid: str | None
    tokens: frozenset
    site_path: str
    site_url: str = ""


#: The cookie in which Volto keeps its JWT.
VOLTO_TOKEN_COOKIE = "auth_token"


def volto_token(cookie_header):
    """The value of the ``auth_token`` cookie in a Cookie header, or None."""
    for pair in cookie_header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name == VOLTO_TOKEN_COOKIE:
            return value.strip('"') or None
    return None


def principal_environ(handshake_environ, site_id):
    """The environ of a GET of the principal view, carrying the handshake's credentials."""
    environ = {k: v for k, v in handshake_environ.items() if k not in DROPPED}
    if not environ.get("HTTP_AUTHORIZATION"):
        token = volto_token(environ.get("HTTP_COOKIE", ""))
        if token is not None:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    environ.update({
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/{site_id}/{PRINCIPAL_VIEW}",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": "0",
        "wsgi.input": io.BytesIO(),
        "HTTP_ACCEPT": "application/json",
    })
    environ.pop("CONTENT_TYPE", None)
    return environ


def resolve_principal(app, handshake_environ, site_id):
    """Worker thread: publish the principal view; Principal or AuthenticationFailed."""
    status = []

    def start_response(code, headers, exc_info=None):
        status.append(code)

    result = app(principal_environ(handshake_environ, site_id), start_response)
    try:
        body = b"".join(result)
    finally:
        close_body(result, quietly=False)
    code = int(status[0].split()[0]) if status else 500
    if code == 401:
        raise AuthenticationFailed(401, "authentication failed")
    if code == 404:
        raise AuthenticationFailed(404, f"no Plone site {site_id!r} with txzserver installed")
    if code != 200:
        raise AuthenticationFailed(500, f"principal lookup answered {code}")
    data = json.loads(body)
    return Principal(userid=data.get("userid"), tokens=frozenset(data.get("tokens") or ()),
                     site_path=data.get("site_path") or f"/{site_id}", site_url=data.get("site_url", ""))
