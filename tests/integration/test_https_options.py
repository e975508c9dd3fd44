"""`<https-server>` options against a real server: `http2 off`, and a certificate file that
carries the chain (the server certificate, then an intermediate CA).

One server has both: its TLS listener offers only http/1.1 by ALPN and sends a localhost
certificate signed by an intermediate CA, which a test root CA signed.
"""

import socket
import ssl

import httpx
import pytest
from cryptography import x509

from tests.support.instance import https_server
from tests.support.tls import make_chain_certificates


@pytest.fixture(scope="module")
def chain_files(tmp_path_factory):
    return make_chain_certificates(tmp_path_factory.mktemp("chain"))


@pytest.fixture(scope="module")
def http11_only(servers, chain_files):
    """A server whose <https-server> has `http2 off` and the chain in its certificate file."""
    return servers.start("https-options", extra=https_server(
        0, chain_files["chain"], chain_files["key"], http2=False))


def trusting_the_root(chain_files):
    """A client context that trusts the test root CA and nothing else (not the intermediate)."""
    return ssl.create_default_context(cafile=str(chain_files["root"]))


def negotiate(server, chain_files, offered):
    """(ALPN protocol the server selected or None, the TLS error if the handshake failed)."""
    context = trusting_the_root(chain_files)
    context.set_alpn_protocols(offered)
    with socket.create_connection(("127.0.0.1", server.ports["https"]), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.selected_alpn_protocol(), None
        except ssl.SSLError as exc:
            return None, exc


# http2 off

# Found by these tests: Twisted (26.x) offers by ALPN the union of the CertificateOptions'
# acceptableProtocols (listeners.tls_options) and the site's own acceptableProtocols(); ZopeSite
# answers the listener's choice there too.

def test_http2_off_selects_http11_when_both_are_offered(http11_only, chain_files):
    assert negotiate(http11_only, chain_files, ["h2", "http/1.1"]) == ("http/1.1", None)


def test_http2_off_does_not_select_h2_for_an_h2_only_client(http11_only, chain_files):
    # No common protocol: the handshake fails, or ends without ALPN (then an h2-only client
    # must give up and an h2-or-HTTP/1.1 client falls back to HTTP/1.1).
    protocol, error = negotiate(http11_only, chain_files, ["h2"])
    assert protocol is None, f"selected {protocol!r}"
    # RFC 7301 asks for a no_application_protocol alert; OpenSSL under Twisted sends
    # internal_error. Either way the h2-only client cannot speak h2 here.
    assert error is None or isinstance(error, ssl.SSLError), error


def test_http2_off_httpx_with_http2_gets_http11(http11_only, site_id, chain_files):
    with httpx.Client(http2=True, verify=trusting_the_root(chain_files), timeout=30) as client:
        response = client.get(http11_only.url(f"/{site_id}", kind="https"))
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert "plone" in response.text.lower()


def test_http2_off_leaves_h2c_on_the_cleartext_listener(http11_only, site_id):
    with httpx.Client(http1=False, http2=True, timeout=30) as client:
        response = client.get(http11_only.url(f"/{site_id}"))
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"


# a certificate file with the chain

def test_chain_file_holds_the_leaf_then_the_intermediate(chain_files):
    leaf, intermediate = x509.load_pem_x509_certificates(chain_files["chain"].read_bytes())
    root = x509.load_pem_x509_certificate(chain_files["root"].read_bytes())
    assert leaf.issuer == intermediate.subject
    assert intermediate.issuer == root.subject != leaf.issuer  # the root alone cannot verify the leaf


def test_client_trusting_only_the_root_verifies_the_chain(http11_only, site_id, chain_files):
    # The client has the root only: the handshake verifies because the server sends the
    # intermediate along with its certificate.
    with httpx.Client(verify=trusting_the_root(chain_files), timeout=30) as client:
        response = client.get(http11_only.url(f"/{site_id}", kind="https"))
    assert response.status_code == 200
    assert "https://127.0.0.1" in response.text  # Zope saw wsgi.url_scheme https
