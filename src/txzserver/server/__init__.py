"""The reactor side of txzserver: listeners, protocols, limits, publishing hand-off, streaming."""
