"""Open the configured sockets: TCP for http/webdav-source, TLS with ALPN for https."""

from twisted.internet import ssl

from .eagertcp import EagerTCPServerEndpoint


def tls_options(listener):
    """CertificateOptions from PEM files, offering h2 and http/1.1 by ALPN."""
    with open(listener.certificate, "rb") as f:
        cert_pem = f.read()
    with open(listener.private_key, "rb") as f:
        key_pem = f.read()
    blocks = _pem_blocks(cert_pem)
    if not blocks:
        raise ValueError(f"{listener.certificate}: no PEM certificate in this file")
    server = ssl.PrivateCertificate.loadPEM(blocks[0] + b"\n" + key_pem)
    chain = [ssl.Certificate.loadPEM(block) for block in blocks[1:]]
    protocols = [b"h2", b"http/1.1"] if listener.http2 else [b"http/1.1"]
    return ssl.CertificateOptions(
        privateKey=server.privateKey.original, certificate=server.original,
        extraCertChain=[c.original for c in chain], acceptableProtocols=protocols,
    )


def _pem_blocks(data):
    marker = b"-----END CERTIFICATE-----"
    return [block + marker for block in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in block]


def endpoint_for(reactor, listener):
    """The server endpoint of one listener: TCP (IPv4 or IPv6 as its interface says), with TLS
    for https; its connections send writes at once (``eagertcp``)."""
    tls = tls_options(listener) if listener.kind == "https" else None
    return EagerTCPServerEndpoint(reactor, listener.port, listener.backlog, listener.interface, tls)


def url_of(listener, port):
    scheme = "https" if listener.kind == "https" else "http"
    host = listener.host or "0.0.0.0"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
