"""A throw-away CA and a localhost certificate for TLS tests (cryptography, in memory)."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certificates(directory):
    """Write ca.pem, server.pem (cert) and server.key; return their paths."""
    directory = Path(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("txzserver test CA"))
          .issuer_name(_name("txzserver test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": directory / "ca.pem", "cert": directory / "server.pem", "key": directory / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def _issue(subject, public_key, issuer=None, ca=False, days=7):
    """A certificate builder for ``subject``, issued by ``issuer`` (self-issued when None)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    signer = issuer.public_key() if issuer is not None else public_key
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer is not None else _name(subject))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer),
                              critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder


def _pem(*certificates):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_chain_certificates(directory):
    """A root CA, an intermediate CA it signed, and a localhost certificate the intermediate
    signed. Write root.pem, chain.pem (the localhost certificate, then the intermediate: what
    a server sends) and chain.key; return their paths.
    """
    directory = Path(directory)
    root_key, intermediate_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _issue("txzserver test root CA", root_key.public_key(), ca=True).sign(
        root_key, hashes.SHA256())
    intermediate = _issue("txzserver test intermediate CA", intermediate_key.public_key(),
                          root, ca=True).sign(root_key, hashes.SHA256())
    leaf = _issue("localhost", key.public_key(), intermediate).sign(
        intermediate_key, hashes.SHA256())
    paths = {"root": directory / "root.pem", "chain": directory / "chain.pem",
             "key": directory / "chain.key"}
    paths["root"].write_bytes(_pem(root))
    paths["chain"].write_bytes(_pem(leaf, intermediate))
    paths["key"].write_bytes(_key_pem(key))
    return paths
