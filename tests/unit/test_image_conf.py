"""The plone image's zope.conf (config/zope.conf) with its entrypoint's defaults (read from
images/plone/docker-entrypoint.sh, not copied): it parses, and the image variables that reach
txzserver's own settings land there (WEBSOCKET_MAX_CONNECTIONS)."""

import pathlib
import re

import pytest

from txzserver.config import load

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "images" / "plone" / "docker-entrypoint.sh"
#: `export NAME=${NAME:-default}` or `${NAME-default}` with a plain default
DEFAULT = re.compile(r"^export (\w+)=\$\{\1:?-([^$}]*)\}$", re.MULTILINE)


@pytest.fixture
def conf(tmp_path):
    """config/ copied, its INSTANCE (/data in the image) a temporary directory."""
    for path in (ROOT / "config").glob("*.conf"):
        text = path.read_text().replace("%define INSTANCE /data", f"%define INSTANCE {tmp_path}")
        (tmp_path / path.name).write_text(text.replace("/data/", f"{tmp_path}/"))
    (tmp_path / "filestorage").mkdir()
    return tmp_path / "zope.conf"


@pytest.fixture
def image_env(monkeypatch, tmp_path):
    defaults = dict(DEFAULT.findall(ENTRYPOINT.read_text()))
    assert defaults["WEBSOCKET_MAX_CONNECTIONS"] == "10000"
    includes = tmp_path / "zope.conf.d.conf"
    includes.write_text("")
    for name, value in {**defaults, "EVENT_BUS": "off", "ZODB_STORAGE": "filestorage",
                        "ZOPE_CONF_INCLUDES": str(includes), "CLIENT_HOME": str(tmp_path),
                        "WEBSOCKET_SITE": "Plone"}.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_image_conf_parses_with_the_defaults(image_env, conf):
    _, settings = load(conf)
    assert settings.websocket.max_connections == 10000
    assert settings.websocket.site == "Plone"


def test_websocket_max_connections_from_the_environment(image_env, conf):
    image_env.setenv("WEBSOCKET_MAX_CONNECTIONS", "2500")
    _, settings = load(conf)
    assert settings.websocket.max_connections == 2500


def test_a_bad_websocket_limit_is_refused_with_the_key(image_env, conf):
    image_env.setenv("WEBSOCKET_MAX_CONNECTIONS", "0")
    with pytest.raises(Exception, match="websocket max-connections must be at least 1"):
        load(conf)
