"""txzserver: a Twisted server for Zope and Plone ("ZServer reloaded")."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: written once, in pyproject.toml; read from the installed distribution's metadata
    __version__ = version("txzserver")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
