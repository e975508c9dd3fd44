"""Shared test machinery: instance folders, server processes, slow clients."""
