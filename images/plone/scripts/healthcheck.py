"""HEALTHCHECK of the txzserver Plone image, by ROLE.

instance/standalone: GET /<SITE>/ok (the site exists and Zope answers) or /ok without SITE;
zeo: the ZEO port accepts connections; broker: both endpoints are bound.
"""
import os
import socket
import sys
import urllib.request


def http_ok():
    path = f"/{os.environ['SITE']}/ok" if os.environ.get("SITE") else "/ok"
    port = os.environ.get("LISTEN_PORT", "8080").rpartition(":")[2]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=4) as response:
        return response.status == 200


def tcp_ok(address):
    host, _, port = address.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "*") else host
    with socket.create_connection((host, int(port)), timeout=4):
        return True


def endpoint_ok(endpoint):
    if endpoint.startswith("ipc://"):
        return os.path.exists(endpoint[len("ipc://"):])
    if endpoint.startswith("tcp://"):
        return tcp_ok(endpoint[len("tcp://"):])
    return True


def main():
    role = os.environ.get("ROLE", "instance")
    try:
        if role == "zeo":
            return tcp_ok(os.environ.get("ZEO_LISTEN", "8100"))
        if role == "broker":
            return all(endpoint_ok(os.environ.get(key, ""))
                       for key in ("EVENT_BUS_PUBLISH", "EVENT_BUS_SUBSCRIBE"))
        return http_ok()
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
