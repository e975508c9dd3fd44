"""compose/dev-certs.sh: the development CA can sign for the configured names only
(nameConstraints, critical), its key is gone once the front's certificate is signed, both are
valid for a short time, and an older CA (key kept, no constraints) is replaced. Read with
openssl from the files the script makes in a directory of the test's own.
"""

import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from tests.robustness import ROWS
from tests.support.instance import ROOT

FIGURES = ROWS["dev_ca"].figures
SCRIPT = ROOT / "compose" / "dev-certs.sh"


def make(directory, names=None):
    env = dict(os.environ)
    if names is not None:
        env["SERVER_NAMES"] = names
    subprocess.run(["sh", str(SCRIPT), str(directory)], env=env, check=True, capture_output=True)


def openssl(*args):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True).stdout


def extension(cert, name):
    return openssl("x509", "-noout", "-ext", name, "-in", str(cert))


def not_after(cert):
    text = openssl("x509", "-noout", "-enddate", "-in", str(cert)).strip().split("=", 1)[1]
    return datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dev-ca")
    make(directory)
    return directory


def test_the_ca_key_is_deleted_and_only_public_files_stay(certs):
    assert sorted(p.name for p in certs.iterdir()) == ["ca.crt", "front.pem", "localhost.crt", "names"]
    assert oct(os.stat(certs / "front.pem").st_mode & 0o777) == "0o640"


def test_the_ca_may_sign_for_the_default_names_only(certs):
    constraints = extension(certs / "ca.crt", "nameConstraints")
    assert "critical" in constraints.splitlines()[0]
    permitted = [line.strip() for line in constraints.splitlines()[2:] if line.strip()]
    assert ", ".join(permitted) == FIGURES["permitted"]
    assert "Excluded" not in constraints
    assert "pathlen:0" in extension(certs / "ca.crt", "basicConstraints")


def test_the_front_certificate_names_them_and_verifies(certs):
    san = extension(certs / "localhost.crt", "subjectAltName")
    assert "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" in san
    assert openssl("verify", "-CAfile", str(certs / "ca.crt"), str(certs / "localhost.crt")).strip() \
        == f"{certs / 'localhost.crt'}: OK"


def test_both_are_valid_for_a_short_time(certs):
    now = datetime.now(timezone.utc)
    for cert in (certs / "ca.crt", certs / "localhost.crt"):
        assert now + timedelta(days=FIGURES["days"] - 1) < not_after(cert) \
            <= now + timedelta(days=FIGURES["days"], minutes=5)


def test_configured_names_are_added(tmp_path):
    make(tmp_path, names="localhost 127.0.0.1 ::1 plone.example.org")
    permitted = extension(tmp_path / "ca.crt", "nameConstraints")
    assert "DNS:plone.example.org" in permitted
    assert "DNS:plone.example.org" in extension(tmp_path / "localhost.crt", "subjectAltName")
    assert not (tmp_path / "ca.key").exists()


def test_an_older_ca_with_its_key_is_replaced(tmp_path):
    """What the script made before: a CA without constraints whose key was kept."""
    openssl("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-days", "825",
            "-subj", "/CN=old", "-addext", "basicConstraints=critical,CA:TRUE",
            "-keyout", str(tmp_path / "ca.key"), "-out", str(tmp_path / "ca.crt"))
    (tmp_path / "front.pem").write_text("old")
    make(tmp_path)
    assert not (tmp_path / "ca.key").exists()
    assert "Permitted" in extension(tmp_path / "ca.crt", "nameConstraints")
    before = (tmp_path / "ca.crt").read_bytes()
    make(tmp_path)  # up to date: kept
    assert (tmp_path / "ca.crt").read_bytes() == before
