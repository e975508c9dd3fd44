"""txzserver.websocket.auth: the principal view's environ (the handshake's credentials, not
its upgrade headers) and how its answer becomes a Principal or an AuthenticationFailed."""

import io
import json

import pytest

from txzserver.websocket.auth import (
    PRINCIPAL_VIEW, AuthenticationFailed, Principal, principal_environ, resolve_principal,
)

HANDSHAKE = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/ws",
    "QUERY_STRING": "path=/Plone/news",
    "CONTENT_TYPE": "text/plain",
    "CONTENT_LENGTH": "",
    "SERVER_NAME": "example.org",
    "SERVER_PORT": "8080",
    "HTTP_HOST": "example.org:8080",
    "HTTP_COOKIE": "__ac=abc",
    "HTTP_AUTHORIZATION": "Bearer jwt",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
    "HTTP_SEC_WEBSOCKET_EXTENSIONS": "permessage-deflate",
    "HTTP_SEC_WEBSOCKET_PROTOCOL": "chat",
    "REMOTE_ADDR": "192.0.2.7",
    "wsgi.url_scheme": "https",
    "wsgi.input": io.BytesIO(b"left over"),
}


def test_principal_environ_carries_credentials_not_the_upgrade():
    before = dict(HANDSHAKE)
    environ = principal_environ(HANDSHAKE, "Plone")
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == f"/Plone/{PRINCIPAL_VIEW}"
    assert environ["QUERY_STRING"] == ""
    assert environ["CONTENT_LENGTH"] == "0"
    assert "CONTENT_TYPE" not in environ
    assert environ["wsgi.input"].read() == b""
    assert environ["HTTP_ACCEPT"] == "application/json"
    assert environ["HTTP_COOKIE"] == "__ac=abc"
    assert environ["HTTP_AUTHORIZATION"] == "Bearer jwt"
    assert environ["HTTP_HOST"] == "example.org:8080"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["REMOTE_ADDR"] == "192.0.2.7"
    for name in ("HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_SEC_WEBSOCKET_KEY",
                 "HTTP_SEC_WEBSOCKET_VERSION", "HTTP_SEC_WEBSOCKET_EXTENSIONS",
                 "HTTP_SEC_WEBSOCKET_PROTOCOL"):
        assert name not in environ
    assert HANDSHAKE == before  # the handshake's environ is not changed


def test_volto_auth_token_cookie_stands_for_a_bearer_header():
    handshake = dict(HANDSHAKE, HTTP_COOKIE='__ac=abc; auth_token="jwt.from.volto"; other=1')
    del handshake["HTTP_AUTHORIZATION"]
    assert principal_environ(handshake, "Plone")["HTTP_AUTHORIZATION"] == "Bearer jwt.from.volto"
    # an Authorization header of the handshake's own wins over the cookie
    handshake["HTTP_AUTHORIZATION"] = "Basic YWRtaW46YWRtaW4="
    assert principal_environ(handshake, "Plone")["HTTP_AUTHORIZATION"] == "Basic YWRtaW46YWRtaW4="
    # no such cookie (or an empty one): no header is made up
    for cookie in ("__ac=abc; my_auth_token=x", "auth_token=", ""):
        environ = principal_environ(dict(HANDSHAKE, HTTP_COOKIE=cookie, HTTP_AUTHORIZATION=""),
                                    "Plone")
        assert environ["HTTP_AUTHORIZATION"] == ""


class App:
    def __init__(self, status="200 OK", body=b"", iterable=None):
        self.status = status
        self.body = body
        self.iterable = iterable
        self.environs = []

    def __call__(self, environ, start_response):
        self.environs.append(environ)
        start_response(self.status, [("Content-Type", "application/json")])
        return self.iterable if self.iterable is not None else [self.body]


class Closing(list):
    closed = False

    def close(self):
        self.closed = True


def answer(**data):
    return json.dumps(data).encode()


def test_resolve_principal():
    app = App(body=answer(userid="jane", tokens=["Member", "user:jane", "Member"],
                          site_path="/Plone", site_url="https://example.org/Plone"))
    principal = resolve_principal(app, HANDSHAKE, "Plone")
    assert principal == Principal("jane", frozenset({"Member", "user:jane"}), "/Plone",
                                  "https://example.org/Plone")
    assert app.environs[0]["PATH_INFO"] == "/Plone/@@txzserver-principal"


def test_anonymous_and_defaults():
    principal = resolve_principal(App(body=answer(userid=None, tokens=None)), HANDSHAKE, "intranet")
    assert principal == Principal(None, frozenset(), "/intranet", "")


def test_body_in_several_chunks_and_closed():
    body = answer(userid="jane", tokens=["Member"], site_path="/Plone")
    result = Closing([body[:5], b"", body[5:]])
    principal = resolve_principal(App(iterable=result), HANDSHAKE, "Plone")
    assert principal.userid == "jane"
    assert result.closed


def test_result_is_closed_when_iterating_fails():
    class Failing(Closing):
        def __iter__(self):
            raise RuntimeError("conflict")

    result = Failing()
    with pytest.raises(RuntimeError):
        resolve_principal(App(iterable=result), HANDSHAKE, "Plone")
    assert result.closed


@pytest.mark.parametrize("status, code, fragment", [
    ("401 Unauthorized", 401, "authentication failed"),
    ("404 Not Found", 404, "'Plone'"),
    ("500 Internal Server Error", 500, "answered 500"),
    ("302 Found", 500, "answered 302"),
])
def test_refusals(status, code, fragment):
    result = Closing([b"nope"])
    with pytest.raises(AuthenticationFailed) as info:
        resolve_principal(App(status=status, iterable=result), HANDSHAKE, "Plone")
    assert info.value.code == code
    assert fragment in info.value.reason
    assert result.closed


def test_app_that_never_starts_the_response_is_500():
    def app(environ, start_response):
        return [b""]

    with pytest.raises(AuthenticationFailed) as info:
        resolve_principal(app, HANDSHAKE, "Plone")
    assert info.value.code == 500


def test_non_json_answer_raises():
    """The protocol turns any other exception into a logged 500."""
    with pytest.raises(ValueError):
        resolve_principal(App(body=b"<html>Plone</html>"), HANDSHAKE, "Plone")
