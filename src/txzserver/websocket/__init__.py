"""Live notifications over WebSocket: hand-off from HTTP, Autobahn protocol, fan-out."""
