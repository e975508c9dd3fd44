"""A real Plone site over HTTP/1.1, HTTP/2 by ALPN over TLS, and cleartext h2c."""

import ssl
import socket

import httpx


def test_front_page_http11(plone_server, site_id):
    response = httpx.get(plone_server.url(f"/{site_id}"), timeout=60)
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert "plone" in response.text.lower()
    assert response.headers["server"].startswith("txzserver/")


def test_front_page_h2c_prior_knowledge(plone_server, site_id):
    with httpx.Client(http1=False, http2=True, timeout=60) as client:
        response = client.get(plone_server.url(f"/{site_id}"))
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert "plone" in response.text.lower()


def test_front_page_h2_over_tls_alpn(plone_server, site_id, tls_files):
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    with socket.create_connection(("127.0.0.1", plone_server.ports["https"])) as raw:
        context.set_alpn_protocols(["h2", "http/1.1"])
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
    verify = ssl.create_default_context(cafile=str(tls_files["ca"]))
    with httpx.Client(http2=True, verify=verify, timeout=60) as client:
        response = client.get(plone_server.url(f"/{site_id}", kind="https"))
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert "https://127.0.0.1" in response.text  # Zope saw wsgi.url_scheme https


def test_http11_over_tls(plone_server, site_id, tls_files):
    verify = ssl.create_default_context(cafile=str(tls_files["ca"]))
    with httpx.Client(http2=False, verify=verify, timeout=60) as client:
        response = client.get(plone_server.url(f"/{site_id}", kind="https"))
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"


def test_upgrade_h2c_answers_the_request_on_stream_1(plone_server, site_id):
    from tests.support.h2client import h2c_upgrade_get
    first, status, headers, body = h2c_upgrade_get(plone_server.port, f"/{site_id}")
    assert first.startswith("HTTP/1.1 101")
    assert status == 200
    assert headers["server"].startswith("txzserver/")
    assert b"plone" in body.lower() and len(body) == int(headers["content-length"])


def test_upgrade_h2c_with_a_body_stays_http11(plone_server, site_id):
    with socket.create_connection(("127.0.0.1", plone_server.port)) as sock:
        sock.sendall(b"POST /%s HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n"
                     b"Connection: close\r\n\r\nx=1" % site_id.encode())
        head = sock.recv(64)
    assert head.startswith(b"HTTP/1.1 200")


def test_cleartext_http11_does_not_offer_h2_without_preface(plone_server, site_id):
    # A client that does not start with the preface speaks HTTP/1.1 even with h2c on.
    with socket.create_connection(("127.0.0.1", plone_server.ports["http"])) as sock:
        sock.sendall(b"GET /%s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % site_id.encode())
        head = sock.recv(64)
    assert head.startswith(b"HTTP/1.1 200")
