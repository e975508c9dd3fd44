"""txzserver's zope.conf keys and sections as plain records, read from schema.xml and
component.xml: the one place where a setting's name, datatype, default and description are
written. The paste options, the configuration reference and the commented defaults of a new
instance's zope.conf are derived from here."""

import functools
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ZConfig.datatypes import Registry

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_FILE = os.path.join(HERE, "schema.xml")
COMPONENT_FILE = os.path.join(HERE, "component.xml")


@dataclass(frozen=True)
class Key:
    """A <key> or <multikey>: ``datatype`` and ``default`` as written in the XML."""

    name: str
    datatype: str
    default: str | None
    required: bool
    multi: bool
    attribute: str
    description: str


@dataclass(frozen=True)
class SectionType:
    """A <sectiontype> (or <abstracttype>: no keys) of component.xml."""

    name: str
    description: str
    keys: tuple[Key, ...] = ()
    implements: str = ""
    extends: str = ""


@dataclass(frozen=True)
class SectionUse:
    """A <section> or <multisection> of schema.xml: where a section type may appear."""

    type: str
    name: str
    attribute: str
    multi: bool
    description: str


@dataclass(frozen=True)
class Schema:
    description: str
    keys: tuple[Key, ...]
    sections: tuple[SectionUse, ...]
    types: dict  # name -> SectionType
    prefix: str  # of component.xml's relative datatypes (".name")

    def key(self, name):
        return next((key for key in self.keys if key.name == name), None)

    def implementations(self, abstract):
        return [t for t in self.types.values() if t.implements == abstract]

    def converter(self, key):
        """The function ZConfig converts ``key``'s value with."""
        name = key.datatype or "string"
        if name.startswith("."):
            name = self.prefix + name
        return _registry().get(name)


@functools.cache
def _registry():
    return Registry()


def _text(element):
    """The element's <description>, whitespace made single spaces."""
    node = element.find("description")
    return " ".join((node.text or "").split()) if node is not None else ""


def _key(element):
    name = element.get("name")
    return Key(name=name, datatype=element.get("datatype", ""), default=element.get("default"),
               required=element.get("required") == "yes", multi=element.tag == "multikey",
               attribute=element.get("attribute") or name.replace("-", "_"),
               description=_text(element))


def _keys(element):
    return tuple(_key(child) for child in element if child.tag in ("key", "multikey"))


def read(schema_file=SCHEMA_FILE, component_file=COMPONENT_FILE):
    """The schema's own keys and sections (not those of Zope's schema it extends)."""
    schema = ET.parse(schema_file).getroot()
    component = ET.parse(component_file).getroot()
    types = {}
    for element in component:
        if element.tag in ("sectiontype", "abstracttype"):
            types[element.get("name")] = SectionType(
                name=element.get("name"), description=_text(element), keys=_keys(element),
                implements=element.get("implements", ""), extends=element.get("extends", ""))
    sections = tuple(
        SectionUse(type=element.get("type"), name=element.get("name", ""),
                   attribute=element.get("attribute"), multi=element.tag == "multisection",
                   description=_text(element))
        for element in schema if element.tag in ("section", "multisection"))
    return Schema(description=_text(schema), keys=_keys(schema), sections=sections, types=types,
                  prefix=component.get("prefix", ""))


@functools.cache
def shipped():
    """The schema txzserver ships (read once)."""
    return read()


def commented_defaults(schema=None, leave_out=("server-threads",)):
    """``# key default`` lines of every top-level key that has a default, for a new
    instance's zope.conf: a new key shows up there without editing the template."""
    schema = schema or shipped()
    return "\n".join(f"# {key.name} {key.default}".rstrip() for key in schema.keys
                     if key.default is not None and key.name not in leave_out)
