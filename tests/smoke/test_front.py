"""The TLS front: ALPN, HTTP/2 and HTTP/1.1, trusted X-Forwarded-*, WebDAV."""

import socket
import ssl

import httpx

from .conftest import CA


def alpn(port, offered):
    context = ssl.create_default_context(cafile=str(CA))
    context.set_alpn_protocols(offered)
    with socket.create_connection(("localhost", port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.selected_alpn_protocol()


def test_alpn_offers_h2_and_http11(port):
    assert alpn(port, ["h2", "http/1.1"]) == "h2"
    assert alpn(port, ["http/1.1"]) == "http/1.1"


def test_http2_front_page(client):
    response = client.get("/Plone")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert "<html" in response.text


def test_http11_works_too(base_url, ssl_context):
    with httpx.Client(base_url=base_url, verify=ssl_context, http2=False) as http1:
        response = http1.get("/Plone")
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"


def test_instances_trust_the_front_forwarded_headers(client, base_url):
    # links are made from X-Forwarded-Proto/Host set by the front (trusted-proxy front)
    response = client.get("/Plone")
    assert f'href="{base_url}/Plone' in response.text
    assert "http://localhost" not in response.text


def test_spoofed_forwarded_headers_are_replaced(client, base_url):
    response = client.get("/Plone", headers={"X-Forwarded-Host": "evil.example",
                                             "X-Forwarded-Proto": "http"})
    assert "evil.example" not in response.text
    assert f"{base_url}/Plone" in response.text


def test_responses_name_the_instance(client):
    names = {client.get("/Plone/ok").headers["X-Txzserver-Instance"] for _ in range(8)}
    assert names == {"instance1", "instance2"}


def test_webdav_propfind(client, admin):
    response = client.request("PROPFIND", "/Plone", auth=admin, headers={"Depth": "1"},
                              content=b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>')
    assert response.status_code == 207, response.text[:300]
    assert "multistatus" in response.text
    assert "/Plone/" in response.text
