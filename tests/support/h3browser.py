"""Chromium speaking HTTP/3 to a test server: headless, QUIC forced on the server's origin,
the server's certificate accepted by its key (Chromium's QUIC trusts no test CA)."""

import base64
import hashlib
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def spki_hash(cert_path):
    """base64(sha256(SubjectPublicKeyInfo)) of the server certificate: what Chromium's
    --ignore-certificate-errors-spki-list takes."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium(port, cert, profile, features=()):
    """A selenium Chrome driver for Chromium with QUIC forced on localhost:``port``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-quic",
             # localhost is ::1 first, where the UDP socket (127.0.0.1) is not: the
             # handshake failed with ERR_QUIC_HANDSHAKE_FAILED (port unreachable)
             "--host-resolver-rules=MAP localhost 127.0.0.1",
             f"--origin-to-force-quic-on=localhost:{port}",
             f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"]
    if features:
        flags.append("--enable-features=" + ",".join(features))
    for flag in flags:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
