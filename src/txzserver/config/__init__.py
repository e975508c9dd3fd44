"""Load a zope.conf with txzserver's schema (Zope's WSGI schema plus server sections)."""

import os
import xml.sax

from Zope2.Startup.options import ConditionalSchemaParser, ZopeWSGIOptions
import ZConfig
from ZConfig.loader import SchemaLoader

from .keys import SCHEMA_FILE
from .settings import ServerSettings, SettingsError


class _ExtendingSchemaParser(ConditionalSchemaParser):
    """Zope's conditional parser that also applies to schemas we extend.

    ZConfig parses a base schema named in ``extends`` with its plain parser, which would
    fail on Zope's ``<import ... condition="tempstorage"/>`` when tempstorage is absent.
    """

    def extendSchema(self, src):
        parser = _ExtendingSchemaParser(self._loader, src, self)
        with self._loader.openResource(src) as resource:
            xml.sax.parse(resource.file, parser)


class TxzServerOptions(ZopeWSGIOptions):
    """ZopeWSGIOptions reading our schema, so Zope's handlers see the usual config root."""

    schemadir = os.path.dirname(SCHEMA_FILE)
    schemafile = os.path.basename(SCHEMA_FILE)

    def _conditional_load(self):
        loader = SchemaLoader()
        url = loader.normalizeURL(self.schemafile)
        with loader.openResource(url) as resource:
            parser = _ExtendingSchemaParser(loader, resource.url)
            xml.sax.parse(resource.file, parser)
        self.schema = parser._schema


class ConfigError(Exception):
    """A zope.conf that cannot be used; the message names the file, line and reason."""


def load(path):
    """Parse ``path``; return (ZopeWSGIOptions, ServerSettings) or raise ConfigError."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such configuration file")
    try:
        opts = TxzServerOptions(configfile=path)()
    except ZConfig.ConfigurationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        settings = ServerSettings.from_zconfig(opts.configroot)
    except SettingsError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return opts, settings


def _describe(exc, path):
    """ZConfig's messages do not always carry the file and line (an unknown key's message is
    only "'x' is not a known key name"); make sure both are named when ZConfig knows them."""
    text = str(exc)
    if path in text:
        return text
    url = getattr(exc, "url", None) or ""
    source = url[len("file://"):] if url.startswith("file://") else (url or path)
    lineno = getattr(exc, "lineno", None)
    where = f"{source}, line {lineno}" if isinstance(lineno, int) and lineno > 0 else source
    return f"{where}: {getattr(exc, 'message', None) or text}"


__all__ = ["load", "ConfigError", "ServerSettings", "TxzServerOptions", "SCHEMA_FILE"]
