"""txzserver.instance: mkinstance's folder and the zope.conf it writes."""

import os

import pytest

from txzserver.config import load
from txzserver.zope.instance import InstanceError, make_instance, parse_user, render_config


@pytest.mark.parametrize("value, expected", [
    ("admin:secret", ("admin", "secret")),
    ("admin:with:colons", ("admin", "with:colons")),
])
def test_parse_user(value, expected):
    assert parse_user(value) == expected


def test_parse_user_generates_a_password():
    name, password = parse_user("admin")
    assert name == "admin"
    assert len(password) >= 16
    assert parse_user("admin")[1] != password


@pytest.mark.parametrize("value", ["", ":secret", "admin:"])
def test_parse_user_errors(value):
    with pytest.raises(InstanceError):
        parse_user(value)


def test_render_config_substitutes_everything(tmp_path):
    text = render_config(str(tmp_path), address="127.0.0.1:9000", threads=7)
    assert "${" not in text
    assert f"%define INSTANCE {tmp_path}" in text
    assert "instancehome $INSTANCE" in text
    assert "server-threads 7" in text
    assert "address 127.0.0.1:9000" in text
    assert "<filestorage>" in text and "<zeoclient>" not in text
    zeo = render_config(str(tmp_path), zeo="zeo:8100")
    assert "server zeo:8100" in zeo and "<filestorage>" not in zeo


def test_make_instance(tmp_path):
    directory = tmp_path / "inst with space"
    conf, user, password = make_instance(str(directory), "admin:s3cret", address="8081")
    assert conf == str(directory / "etc" / "zope.conf")
    assert (user, password) == ("admin", "s3cret")
    for sub in ("etc", "var", "log"):
        assert (directory / sub).is_dir()
    inituser = (directory / "inituser").read_bytes()
    assert inituser.startswith(b"admin:")
    assert b"s3cret" not in inituser
    opts, settings = load(conf)
    assert settings.listeners[0].port == 8081
    assert opts.configroot.instancehome == str(directory)


def test_make_instance_refuses_to_overwrite(tmp_path):
    conf, _, _ = make_instance(str(tmp_path), "admin:one")
    with open(conf, "a") as f:
        f.write("# edited\n")
    with pytest.raises(InstanceError, match="exists already"):
        make_instance(str(tmp_path), "admin:two")
    assert open(conf).read().endswith("# edited\n")
    make_instance(str(tmp_path), "admin:two", threads=2, force=True)
    assert "server-threads 2" in open(conf).read()
    assert "# edited" not in open(conf).read()


def test_make_instance_relative_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf, _, _ = make_instance("rel", "admin:x")
    assert os.path.isabs(conf)
    assert f"%define INSTANCE {tmp_path / 'rel'}" in open(conf).read()
