"""Run inside the plone image by the entrypoint's `run` command (`txzserver run`, ``app`` bound):
prints one line `PROBE <json>` with the effective configuration of that process (Zope's
getConfiguration(), the parsed zope.conf and txzserver's settings, the open storage, ZCML
registrations, users) and, for each Plone site, what the tests of tests/smoke/test_image_env.py
check (language, timezone, profiles, content). Reads only; mounted into the container."""

import importlib.util
import json
import logging
import os

import ZPublisher.HTTPRequest as http_request
from Acquisition import aq_base
from App.config import getConfiguration
from plone.registry.interfaces import IRegistry
from txzserver.config import load
from zope.component import getUtility, queryUtility
from zope.component.hooks import setSite
from zope.interface import Interface

PROFILES = ("plone.volto:default", "plone.app.caching:default", "plone.restapi:default",
            "txzserver:default", "txzserver:example-rules")


def storage_facts(storage, section):
    facts = {"class": type(storage).__name__, "read_only": storage.isReadOnly()}
    if facts["class"] == "ClientStorage":
        facts.update(read_only_fallback=storage._read_only_fallback, blob_dir=storage.blob_dir,
                     shared_blob_dir=bool(storage.shared_blob_dir), cache_size=storage._cache.maxsize,
                     server=[list(a.address) for a in section.server], storage=section.storage,
                     config_read_only=section.read_only,
                     wait_timeout=section.wait_timeout)
    return facts


def logins(users):
    """Plone replaces the root's user folder by a PluggableAuthService on the first site."""
    if hasattr(users, "searchUsers"):
        return sorted({found["login"] for found in users.searchUsers()})
    return sorted(users.getUserNames())


def authenticates(users, login, password):
    if hasattr(users, "source_users"):
        credentials = {"login": login, "password": password}
        return users.source_users.authenticateCredentials(credentials) is not None
    return users.authenticate(login, password, None) is not None


def site_facts(site):
    setSite(site)
    try:
        registry = getUtility(IRegistry)
        setup = site.portal_setup
        return {
            "language": registry["plone.default_language"],
            "timezone": registry["plone.portal_timezone"],
            "profiles": sorted(p for p in PROFILES if setup.getLastVersionForProfile(p) != "unknown"),
            "ids": sorted(site.objectIds()),
            "blocks": bool(getattr(aq_base(site), "blocks", None)),
        }
    finally:
        setSite(None)


def main(app):
    config = getConfiguration()
    opts, settings = load("/app/etc/zope.conf")
    database = opts.configroot.databases[0].config
    users = app.acl_users
    password = os.environ.get("PROBE_PASSWORD")
    site_zcml = "/data/etc/site.zcml"
    facts = {
        "debug_mode": config.debug_mode,
        "security_policy_implementation": config.security_policy_implementation,
        "verbose_security": config.verbose_security,
        "default_zpublisher_encoding": config.default_zpublisher_encoding,
        "clienthome": config.clienthome,
        "product_config": config.product_config,
        "form_limits": [http_request.FORM_MEMORY_LIMIT, http_request.FORM_DISK_LIMIT,
                        http_request.FORM_MEMFILE_LIMIT],
        "threads": settings.threads,
        "max_request_body_size": settings.max_request_body_size,
        "idle_timeout": settings.idle_timeout,
        "shutdown_timeout": settings.shutdown_timeout,
        "trusted_proxies": list(settings.trusted_proxies),
        "instance_name": settings.instance_name,
        "log_format": opts.configroot.log_format,
        "cache_size": database.cache_size,
        "connection_cache_size": app._p_jar.db().getCacheSize(),
        "log_level": logging.getLevelName(logging.getLogger().level),
        "storage": storage_facts(app._p_jar.db().storage, database.storage.config),
        "utilities": sorted(n for n in ("txzdev", "txzmine", "txzimage")
                            if queryUtility(Interface, name=n) is not None),
        "txzdev_origin": getattr(importlib.util.find_spec("txzdev"), "origin", None),
        "site_zcml": os.readlink(site_zcml) if os.path.islink(site_zcml) else None,
        "users": logins(users),
        "authenticated": sorted(login for login in logins(users)
                                if password and authenticates(users, login, password)),
        "sites": {site.getId(): site_facts(site) for site in app.objectValues("Plone Site")},
    }
    print("PROBE " + json.dumps(facts, default=str))


main(app)  # noqa: F821 (bound by txzserver run)
