"""The configuration reference (docs/configuration-reference.md), rendered from the schema's
descriptions, datatypes and defaults, so it cannot drift from what zope.conf accepts.

``python -m txzserver.config.reference --write`` rewrites the page (``make docs-reference``);
``--check`` exits 1 when the page differs from what the schema renders."""

import argparse
import os
import re
import sys

from . import keys
from .datatypes import Choice
from .settings import PASTE_RENAMED, paste_options, zope_conf_key

PAGE = os.path.join("docs", "configuration-reference.md")

#: how ZConfig's own datatypes read in zope.conf
BUILTIN_TYPES = {
    "": "string",
    "string": "string",
    "integer": "integer",
    "float": "number",
    "boolean": "`on` or `off`",
    "byte-size": "size (`512KB`, `1MB`, `2GB`)",
    "time-interval": "duration (`10s`, `5m`, `1h`, `1d`)",
    "inet-binding-address": "`host:port` or `port`",
    "existing-file": "path of an existing file",
}

INTRO = """\
# Configuration reference

<!-- Generated from src/txzserver/config/schema.xml and component.xml by
     `python -m txzserver.config.reference --write` (make docs-reference): edit the
     <description>s there, not this page. tests/unit/test_config_reference.py fails when the two
     differ. -->

`zope.conf` is Zope's own WSGI configuration (everything Zope documents still applies:
`<zodb_db>`, `<dos_protection>`, `trusted-proxy`, `debug-mode`, ...) extended by the keys and
sections below. `txzserver checkconfig zope.conf` reads a file and reports the first problem
with its line.

{schema}
"""


def escape(text):
    """Markdown-escape a description, leaving `code spans` (written as such) alone."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") else _SPECIAL.sub(r"\\\1", part) for part in parts)


#: what Markdown would read as markup; an underscore only where it could start or end
#: emphasis (SETTINGS_MAX_FRAME_SIZE stays as written)
_SPECIAL = re.compile(r"([\\*<>|\[\]$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def type_of(schema, key):
    name = key.datatype
    if name in BUILTIN_TYPES:
        text = BUILTIN_TYPES[name]
    else:
        convert = schema.converter(key)
        if isinstance(convert, Choice):
            text = " or ".join(f"`{word}`" for word in convert.allowed)
        else:
            text = name.rpartition(".")[2].replace("_", " ")
    return text + ("; may repeat" if key.multi else "")


def default_of(key):
    if key.required:
        return "required"
    if key.default is None:
        return "none"
    return f"`{key.default}`" if key.default else '`""`'


def table(schema, key_list):
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    rows += [f"| `{key.name}` | {type_of(schema, key)} | {default_of(key)} |"
             f" {escape(key.description)} |" for key in key_list]
    return "\n".join(rows)


def section_title(use, type_name):
    name = {"*": "", "+": " NAME"}.get(use.name, f" {use.name}")
    return f"`<{type_name}{name}>`"


def _section(schema, use, type_name, level="##"):
    section = schema.types.get(type_name)
    title = section_title(use, type_name)
    parts = [f"{level} {title}", ""]
    if section is None:
        return parts + [escape(use.description) + " ZConfig's own section type.", ""]
    if level == "##":  # where it may appear, then what it is
        parts += [escape(use.description), ""]
    if section.description:
        parts += [escape(section.description), ""]
    if section.extends:
        parts += [f"Besides these keys, everything of ZConfig's `{section.extends}`"
                  " (level, handler sections).", ""]
    if section.keys:
        parts += [table(schema, section.keys), ""]
    return parts


def render(schema=None, cls=None):
    """The whole page as Markdown."""
    schema = schema or keys.shipped()
    body = ["## Top-level keys", "", table(schema, schema.keys), ""]
    for use in schema.sections:
        if use.type in schema.types and not schema.types[use.type].keys:  # abstract
            body += [f"## {escape(use.description.rstrip('.'))}", ""]
            for section in schema.implementations(use.type):
                body += _section(schema, use, section.name, level="###")
            continue
        body += _section(schema, use, use.type)
    body += paste_table(schema, cls)
    return INTRO.format(schema="\n".join(body).rstrip()) + "\n"


def paste_table(schema, cls=None):
    """The [server:main] options of a zope.ini, each with its zope.conf key."""
    options = paste_options(cls, schema)
    rows = ["| paste option | zope.conf key |", "|---|---|",
            "| `listen` | one `<http-server>` per address: `127.0.0.1:8080 [::1]:8080`"
            " (default `127.0.0.1:8080`) |",
            "| `h2c` | `h2c` of those `<http-server>`s (default `on`) |"]
    for option in sorted(options):
        if option in PASTE_RENAMED:
            rows.append(f"| `{option}` | `trusted-proxy` and `trusted-proxy-network`:"
                        " addresses and networks, separated by blanks |")
        else:
            rows.append(f"| `{option}` | `{zope_conf_key(options[option][0], schema).name}` |")
    return ["## Paste options", "",
            "`[server:main] use = egg:txzserver` in a zope.ini (plone-backend's `runwsgi`"
            " deployments) takes every top-level key above as an option: the key with"
            " underscores, the same datatype and default (durations may also be plain seconds,"
            " `2.5`). Sections have no option: the zope.conf of a paste deployment is Zope's"
            " plain one. Unknown options are refused with the list of known ones.", "",
            "\n".join(rows), ""]


def problems(schema=None):
    """What the reference cannot say: keys, section types and sections without a
    description."""
    schema = schema or keys.shipped()
    found = [f"key {key.name} has no <description>" for key in schema.keys if not key.description]
    for section in schema.types.values():
        if not section.description:
            found.append(f"section type {section.name} has no <description>")
        found += [f"key {key.name} of <{section.name}> has no <description>"
                  for key in section.keys if not key.description]
    found += [f"section {use.type} ({use.attribute}) has no <description>"
              for use in schema.sections if not use.description]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {PAGE}")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when {PAGE} differs")
    parser.add_argument("--page", default=PAGE, help="the page's path (default %(default)s)")
    args = parser.parse_args(argv)
    missing = problems()
    if missing:
        print("\n".join(missing), file=sys.stderr)
        return 1
    text = render()
    if args.write:
        os.makedirs(os.path.dirname(args.page) or ".", exist_ok=True)
        with open(args.page, "w") as f:
            f.write(text)
        print(f"wrote {args.page}")
        return 0
    if args.check:
        current = open(args.page).read() if os.path.exists(args.page) else ""
        if current != text:
            print(f"{args.page} differs from the schema: run python -m txzserver.config.reference"
                  " --write", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
