"""txzserver: a Twisted server for Zope and Plone ("ZServer reloaded")."""

__version__ = "0.1.0.dev0"
