"""A task: a request to publish later, inside the server, as a given user.

``Task`` is what ``add()`` records, what a queue carries (``to_wire``/``from_wire``, the bus's wire codec) and
what the runner turns into a WSGI environ (``task_environ``). The environ marks the request
twice: the ``X-Txzserver-Task`` header (informational: any client can send a header) and the
``txzserver.task`` environ key, which no HTTP client can set (the server puts client headers
under ``HTTP_*`` only). ``is_task(request)`` reads the key.
"""

import base64
import io
import sys
from dataclasses import asdict, dataclass
from urllib.parse import urlencode, urlsplit

from ..bus import wire

#: request header and environ keys of a task request
TASK_HEADER = "X-Txzserver-Task"
TASK_KEY = "txzserver.task"
ATTEMPT_KEY = "txzserver.task.attempt"
RUN_AS_KEY = "txzserver.task.runas"
USER_FOLDER_KEY = "txzserver.task.userfolder"

METHODS_WITH_QUERY = ("GET", "HEAD", "DELETE")


@dataclass(frozen=True)
class Task:
    """One queued request. ``path`` is a physical path (``/Plone/news/@@view``, not URL-quoted,
    may carry ``?query``); ``params`` go to the query string (GET, HEAD, DELETE) or the form
    body; ``payload`` (bytes) is the body instead of the form. ``userid`` runs the request as
    that user of the user folder at ``user_folder`` (a physical path; "" = the first user folder
    above the object that knows the id); "" runs it as Anonymous. ``server_url`` is the
    queuing request's scheme and host, so URLs made by the task look the same."""

    id: str
    queue: str
    path: str
    method: str = "GET"
    params: tuple = ()
    payload: bytes | None = None
    headers: tuple = ()
    userid: str = ""
    user_folder: str = ""
    server_url: str = "http://localhost"

    def __post_init__(self):
        for name in ("id", "queue", "path", "method", "userid", "user_folder", "server_url"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"task {name} must be a string, not {getattr(self, name)!r:.80}")
        for name, kinds in (("params", (str, int, float)), ("headers", str)):
            pairs = getattr(self, name)
            if isinstance(pairs, (str, bytes)) or not all(
                    isinstance(pair, (list, tuple)) and len(pair) == 2
                    and all(isinstance(item, kinds) for item in pair) for pair in pairs):
                raise TypeError(f"task {name} must be a list of (name, value) pairs")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError(f"task path must be absolute, e.g. /Plone/@@view, not {self.path!r}")
        if self.payload is not None and not isinstance(self.payload, bytes):
            raise TypeError("task payload must be bytes")
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "params", tuple(tuple(p) for p in self.params))
        object.__setattr__(self, "headers", tuple(tuple(h) for h in self.headers))

    def describe(self):
        return f"{self.method} {self.path}"

    def to_wire(self) -> bytes:
        data = asdict(self)
        if self.payload is not None:
            data["payload"] = base64.b64encode(self.payload).decode("ascii")
        return wire.encode(data)

    @classmethod
    def from_wire(cls, data: bytes) -> "Task":
        fields = wire.known(cls, wire.decode(data, "a task"), "task ")
        if fields.get("payload") is not None:
            if not isinstance(fields["payload"], str):
                raise TypeError("task payload must be base64 text on the wire")
            fields["payload"] = base64.b64decode(fields["payload"], validate=True)
        return cls(**fields)


def task_environ(task, attempt, software="txzserver"):
    """The WSGI environ of ``task``'s ``attempt`` (1, 2, ...): no socket behind it."""
    path, _, query = task.path.partition("?")
    form = urlencode(task.params) if task.params else ""
    body, content_type = b"", None
    if task.method in METHODS_WITH_QUERY:
        query = "&".join(part for part in (query, form) if part)
    elif task.payload is None and form:
        body, content_type = form.encode("ascii"), "application/x-www-form-urlencoded"
    if task.payload is not None:
        body, content_type = task.payload, "application/octet-stream"
    url = urlsplit(task.server_url or "http://localhost")
    scheme = url.scheme or "http"
    port = url.port or (443 if scheme == "https" else 80)
    environ = {
        "REQUEST_METHOD": task.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": url.hostname or "localhost",
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": software,
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": url.netloc or "localhost",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        TASK_KEY: task.id,
        ATTEMPT_KEY: str(attempt),
        RUN_AS_KEY: task.userid,
        USER_FOLDER_KEY: task.user_folder,
    }
    for name, value in task.headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            content_type = value
        elif key not in ("CONTENT_LENGTH", "HOST"):
            environ["HTTP_" + key] = value
    environ["HTTP_" + TASK_HEADER.upper().replace("-", "_")] = task.id
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    return environ


def is_task(request):
    """True when ``request`` (a Zope request, or a WSGI environ) is a task run by txzserver."""
    environ = request if isinstance(request, dict) else getattr(request, "environ", None) or {}
    return bool(environ.get(TASK_KEY))


def task_attempt(request):
    """The attempt number of a task request (1 for the first run), 0 for other requests."""
    environ = request if isinstance(request, dict) else getattr(request, "environ", None) or {}
    try:
        return int(environ.get(ATTEMPT_KEY) or 0)
    except ValueError:
        return 0
