"""Zope glue: startup, the publish wrapper, WebDAV fixes, site setup, mkinstance."""
