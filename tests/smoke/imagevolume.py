"""One FileStorage volume of the plone image, used by a module's tests in file order, each
command in a container of its own (a FileStorage is opened by one process at a time); every
container and the volume are removed at the end."""

import contextlib
import subprocess
import urllib.error
import urllib.request
import uuid

from .conftest import DOCKER
from .test_image import IMAGE, docker, ok

#: a File at /Plone/txz-marker saying "here": console scripts set it, HTTP reads it while an
#: instance serves, and a replaced site no longer has it
SET_MARKER = ("import transaction\n"
              "from OFS.Image import File\n"
              "site = app.Plone\n"
              "if 'txz-marker' in site.objectIds():\n"
              "    site._delObject('txz-marker')\n"
              "site._setObject('txz-marker', File('txz-marker', '', b'here'))\n"
              "transaction.commit()\n")
SHOW_MARKER = ("print('IDS', sorted(app.objectIds()))\n"
               "marker = app.Plone._getOb('txz-marker', None)\n"
               "print('MARK', marker.data.decode() if marker is not None else None)\n")


def env_args(env):
    return [arg for pair in env for arg in ("-e", pair)]


class ImageVolume:
    """A docker volume named ``txzsmoke-<purpose>-<random>`` and the containers run on it."""

    def __init__(self, purpose):
        self.name = f"txzsmoke-{purpose}-{uuid.uuid4().hex[:6]}"
        self.containers = []

    def __enter__(self):
        docker("volume", "create", self.name)
        return self

    def __exit__(self, *exc):
        for name in self.containers:
            docker("rm", "-fv", name, check=False)
        docker("volume", "rm", "-f", self.name, check=False)

    def new_name(self):
        self.containers.append(f"{self.name}-{len(self.containers)}")
        return self.containers[-1]

    def once(self, *args, env=(), stdin=None, timeout=300):
        """Run the image once on the volume with ARGS as command; a named container, removed even
        when the client times out. The CompletedProcess (not checked)."""
        name = self.new_name()
        interactive = ["-i"] if stdin is not None else []
        try:
            return subprocess.run([DOCKER, "run", "--rm", *interactive, "--name", name,
                                   "-v", f"{self.name}:/data", *env_args(env), IMAGE, *args],
                                  input=stdin, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        finally:
            docker("rm", "-fv", name, check=False)

    @contextlib.contextmanager
    def serving(self, *env):
        """An instance on the volume, port 8080 published on 127.0.0.1; stopped and removed after."""
        name = self.new_name()
        docker("run", "-d", "--name", name, "-v", f"{self.name}:/data", "-p", "127.0.0.1::8080",
               *env_args(env), IMAGE)
        try:
            yield name
        finally:
            docker("stop", name, check=False, timeout=60)
            docker("rm", "-fv", name, check=False)

    def set_marker(self):
        ok(self.once("console", stdin=SET_MARKER, timeout=180))

    def marker(self):
        """The marker File's text read by a console, or "None"."""
        out = ok(self.once("console", stdin=SHOW_MARKER, timeout=180)).stdout
        line = next(line for line in out.splitlines() if "MARK " in line)
        return line.split("MARK ", 1)[1].strip()


def fetch(url, method="GET", headers=None, auth=None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    handlers = []
    if auth:
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, url, *auth)
        handlers.append(urllib.request.HTTPBasicAuthHandler(manager))
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()
