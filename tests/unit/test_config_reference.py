"""One source of truth for settings: schema.xml and ServerSettings. The configuration reference,
the paste options, ServerSettings.from_zconfig and a new instance's commented defaults are
derived from them; these tests fail when the derived parts drift or something goes missing."""

import dataclasses
import re
from pathlib import Path

import pytest

from txzserver.config import TxzServerOptions, load
from txzserver.config import keys, reference
from txzserver.config.datatypes import (EventBusSettings, HealthSettings, MetricsSettings,
                                        TaskQueueSettings, WebSocketSettings)
from txzserver.config.settings import (PASTE_RENAMED, ZCONFIG_READERS, ServerSettings,
                                       paste_options, zope_conf_key)
from txzserver.zope.instance import render_config

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / reference.PAGE
SCHEMA = keys.shipped()
FIELDS = {field.name: field for field in dataclasses.fields(ServerSettings)}
MINIMAL = ("instancehome {home}\n<http-server>\n  address 8080\n</http-server>\n"
           "<zodb_db main>\n  <mappingstorage/>\n  mount-point /\n</zodb_db>\n")


def test_the_page_is_what_the_schema_renders():
    assert PAGE.read_text() == reference.render(), (
        f"{reference.PAGE} is out of date: run python -m txzserver.config.reference --write")


def test_the_check_command_reports_drift(tmp_path):
    page = tmp_path / "reference.md"
    assert reference.main(["--check", "--page", str(page)]) == 1  # missing
    assert reference.main(["--write", "--page", str(page)]) == 0
    assert reference.main(["--check", "--page", str(page)]) == 0
    page.write_text(page.read_text().replace("`1000`", "`999`"))
    assert reference.main(["--check", "--page", str(page)]) == 1


def test_every_key_and_section_has_a_description():
    assert reference.problems() == []
    assert len(SCHEMA.keys) >= 20 and len(SCHEMA.types) >= 10


def test_a_key_without_description_is_found(tmp_path):
    schema = _schema_copy(tmp_path, lambda text: text.replace(
        "<description>Most header lines in one request; more get 431.</description>", ""))
    assert reference.problems(schema) == ["key max-headers has no <description>"]
    component = tmp_path / "component.xml"
    component.write_text((Path(keys.COMPONENT_FILE).read_text()).replace(
        "<description>listen() backlog of the socket.</description>", "", 1))
    schema = keys.read(str(tmp_path / "schema.xml"), str(component))
    assert reference.problems(schema) == ["key max-headers has no <description>",
                                          "key backlog of <http-server> has no <description>"]


def test_the_page_has_every_key_with_type_default_and_description():
    text = reference.render()
    for key in SCHEMA.keys:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key.name}` |"))
        assert key.description[:30] in row.replace("\\", "")
    for section in SCHEMA.types.values():
        if section.keys:
            assert f"`<{section.name}" in text
    assert "| `max-request-body-size` | size (`512KB`, `1MB`, `2GB`) | `1GB` |" in text
    assert "| `reactor` | `auto` or `uvloop` or `asyncio` or `default` | `auto` |" in text
    assert "| `address` | `host:port` or `port` | required |" in text
    assert "| `allowed-origin` | origin; may repeat | none |" in text


def test_every_top_level_key_has_a_paste_option():
    options = paste_options()
    reached = {zope_conf_key(field).name for field, _ in options.values()
               if zope_conf_key(field) is not None}
    reached.add("trusted-proxy-network")  # trusted_proxy takes addresses and networks
    assert reached == {key.name for key in SCHEMA.keys}
    # the ones the hand-written table had left out
    for option in ("instance_name", "access_log_format", "request_spool_threshold", "max_headers",
                   "stream_chunk_size"):
        assert option in options
    page = reference.render()
    for option in options:
        assert f"| `{option}` |" in page


def test_each_paste_option_reads_the_schema_default_as_the_class_default():
    """The default written in the schema, given as a paste option, is the dataclass default."""
    for option, (field, _) in paste_options().items():
        if option in PASTE_RENAMED:
            continue
        key = zope_conf_key(field)
        if not key.default:
            continue
        built = ServerSettings.from_paste(**{option: key.default})
        assert getattr(built, field) == FIELDS[field].default, option


def test_paste_options_take_zope_conf_units_and_name_a_bad_one():
    built = ServerSettings.from_paste(idle_timeout="2m", header_timeout="2.5",
                                      max_request_body_size="2MB", shutdown_delay="5s",
                                      instance_name="blue", max_headers="50", reactor="ASYNCIO")
    assert (built.idle_timeout, built.header_timeout, built.max_request_body_size) == (120.0, 2.5,
                                                                                      2 << 20)
    assert (built.shutdown_delay, built.instance_name, built.max_headers, built.reactor) == (
        5.0, "blue", 50, "asyncio")
    with pytest.raises(ValueError, match="max_headers = 'many'"):
        ServerSettings.from_paste(max_headers="many")
    with pytest.raises(ValueError, match="reactor must be one of auto, uvloop"):
        ServerSettings.from_paste(reactor="gevent")
    with pytest.raises(ValueError, match="unknown txzserver option.*health.*known: listen, h2c"):
        ServerSettings.from_paste(health="8081")


def test_every_field_comes_from_the_schema():
    """A field is read from the key or section of its name, or listed in ZCONFIG_READERS."""
    attributes = {key.attribute for key in SCHEMA.keys} | {use.attribute for use in SCHEMA.sections}
    plain = set(FIELDS) - set(ZCONFIG_READERS)
    assert plain <= attributes, plain - attributes
    assert set(ZCONFIG_READERS) <= set(FIELDS)


class Recording:
    """A ZConfig root that notes which attributes are read."""

    def __init__(self, root):
        self._root, self.read = root, set()

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._root, name)


def test_every_key_and_section_reaches_a_field(tmp_path):
    """No txzserver key of zope.conf is parsed and then ignored by from_zconfig."""
    conf = tmp_path / "zope.conf"
    conf.write_text(MINIMAL.format(home=tmp_path))
    opts, expected = load(str(conf))
    root = Recording(opts.configroot)
    assert ServerSettings.from_zconfig(root) == expected
    wanted = {key.attribute for key in SCHEMA.keys} | {use.attribute for use in SCHEMA.sections}
    wanted -= {"eventlog", "loggers"}  # Zope's startup and app.py set up logging from these
    assert wanted - root.read == set()


def test_a_new_instance_lists_every_key_at_its_default(tmp_path):
    """mkinstance's zope.conf carries the commented defaults made from the schema; uncommented,
    they parse and give the class defaults."""
    for sub in ("etc", "var", "log"):
        (tmp_path / sub).mkdir()
    text = render_config(str(tmp_path))
    lines = keys.commented_defaults().splitlines()
    assert "# max-connections 1000" in lines and "# shutdown-delay 0s" in lines
    assert all(line in text for line in lines)
    uncommented = text.replace(keys.commented_defaults(), "\n".join(
        line[2:] for line in lines if line != "# instance-name"))
    conf = tmp_path / "etc" / "zope.conf"
    conf.write_text(uncommented)
    settings = load(str(conf))[1]
    for name, field in FIELDS.items():
        if field.default is not dataclasses.MISSING and name not in ("instance_name", "task_queues"):
            assert getattr(settings, name) == field.default, name


SECTIONS = {"health-server": HealthSettings, "metrics-server": MetricsSettings,
            "websocket": WebSocketSettings, "event-bus": EventBusSettings,
            "task-queue": TaskQueueSettings}
#: what a section's builder gives itself: the listener from address and backlog, the name
BUILT = {"listener": {"address", "backlog"}, "name": set()}


@pytest.mark.parametrize("type_name", sorted(SECTIONS))
def test_a_section_dataclass_has_a_field_per_key_with_the_same_default(type_name):
    """from_section reads each field from the key of its name: a key without a field, a field
    without a key or two defaults that differ fail here, not in production."""
    cls, section = SECTIONS[type_name], SCHEMA.types[type_name]
    built = {name for name in BUILT if name in {f.name for f in dataclasses.fields(cls)}}
    key_attributes = {key.attribute for key in section.keys} - set().union(
        *(BUILT[name] for name in built))
    assert key_attributes == {field.name for field in dataclasses.fields(cls)} - built
    for key in section.keys:
        field = next((f for f in dataclasses.fields(cls) if f.name == key.attribute), None)
        if field is None or key.default is None:
            continue
        value = SCHEMA.converter(key)(key.default)
        assert (float(value) if field.type is float else value) == field.default, key.name


# Adding a setting: the schema and the dataclass, nothing else

@dataclasses.dataclass(frozen=True)
class Extended(ServerSettings):
    #: a setting added by a test
    linger_time: float = 3.0


NEW_KEY = """
  <key name="linger-time" datatype="time-interval" default="3s">
    <description>A setting added by a test.</description>
  </key>
</schema>"""


def _schema_copy(directory, change):
    text = change(Path(keys.SCHEMA_FILE).read_text())
    (directory / "schema.xml").write_text(text)
    return keys.read(str(directory / "schema.xml"))


def test_a_new_setting_needs_only_the_schema_and_the_dataclass(tmp_path):
    schema = _schema_copy(tmp_path, lambda text: text.replace("</schema>", NEW_KEY))

    class Options(TxzServerOptions):
        schemadir = str(tmp_path)

    conf = tmp_path / "zope.conf"
    conf.write_text(MINIMAL.format(home=tmp_path) + "linger-time 1m\n")
    root = Options(configfile=str(conf))().configroot
    assert Extended.from_zconfig(root).linger_time == 60.0
    field, convert = paste_options(Extended, schema)["linger_time"]
    assert (field, convert("2s"), convert("0.5")) == ("linger_time", 2.0, 0.5)
    page = reference.render(schema, Extended)
    assert re.search(r"\| `linger-time` \| duration .* \| `3s` \| A setting added by a test. \|", page)
    assert "| `linger_time` | `linger-time` |" in page
    assert "# linger-time 3s" in keys.commented_defaults(schema)
    assert reference.problems(schema) == []


def test_from_section_reads_each_field_from_the_key_of_its_name():
    from types import SimpleNamespace

    from txzserver.config.datatypes import from_section

    @dataclasses.dataclass(frozen=True)
    class Section:
        name: str
        wait: float = 1.0
        origins: tuple = ()
        endpoint: str = "ipc:///default"
        size: int = 10

    zconfig = SimpleNamespace(wait=7, origins=["a", "b"], endpoint=None, size=3)
    assert from_section(Section, zconfig, name="q") == Section("q", 7.0, ("a", "b"),
                                                                "ipc:///default", 3)
    with pytest.raises(AttributeError, match="size"):
        from_section(Section, SimpleNamespace(wait=1, origins=[], endpoint=""), name="q")
