"""Chromium speaking HTTP/3 to a test server: headless, QUIC forced on the server's origin,
the server's certificate accepted by its key (Chromium's QUIC trusts no test CA)."""

from .browser import spki_hash, start_chromium


def chromium(port, cert, profile, features=()):
    """A selenium Chrome driver for Chromium with QUIC forced on localhost:``port``."""
    flags = ["--enable-quic",
             # localhost is ::1 first, where the UDP socket (127.0.0.1) is not: the
             # handshake failed with ERR_QUIC_HANDSHAKE_FAILED (port unreachable)
             "--host-resolver-rules=MAP localhost 127.0.0.1",
             f"--origin-to-force-quic-on=localhost:{port}",
             f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"]
    if features:
        flags.append("--enable-features=" + ",".join(features))
    return start_chromium(profile, *flags)
