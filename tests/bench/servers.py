"""The server variants of the benchmark, each on its own copy of the Plone template, and the
in-process limit they are measured against."""

import os
import sys
import time
from pathlib import Path

from tests.bench.clients import process_tree
from tests.bench.pages import RESULTS
from tests.support.instance import ROOT, build_template, copy_instance_data, http_server, new_instance
from tests.support.server import ServerProcess, free_port, rss_bytes

THREADS = 2
#: The File of the bench's Plone site: large enough that a download's start and end do
#: not weigh in its rate.
FILE_SIZE = 256 * 1024 * 1024

# name -> (label for tables, kind, seekable)
VARIANTS = {
    "txzserver": ("txzserver (server-threads 2)", "txzserver", False),
    "waitress": ("waitress stock (threads 2)", "waitress", False),
    "granian": ("granian WSGI (blocking-threads 2)", "granian", False),
    "waitress-seekable": ("waitress + seekable iterator (threads 2)", "waitress", True),
    "inprocess": ("Zope in-process (one thread, no HTTP)", "inprocess", False),
    "ceiling": ("loopback limit (a blocking server of a few lines)", "ceiling", False),
}
#: Kinds that are limits to measure the servers against, not servers.
LIMITS = frozenset({"inprocess", "ceiling"})


def alternating(names, round_):
    """``names`` in their order in even rounds and reversed in odd ones: no variant always goes
    first, so no warm-up or drift of the machine favours one."""
    return list(names) if round_ % 2 == 0 else list(names)[::-1]


def add_template_and_out(parser):
    """The arguments every step of `make bench` on a Plone site takes: a template to reuse
    (a trial run's shortcut) and where its results go."""
    parser.add_argument("--template", type=Path, help="a built template instance to reuse")
    parser.add_argument("--out", type=Path, default=RESULTS)


def template_or_new(template, workdir, size=None):
    """``template`` (--template) or a Plone template built now in ``workdir``, with a File of
    ``size`` bytes when one is wanted; the folder of the template instance."""
    if template is not None:
        return template
    print(f"[{time.strftime('%H:%M:%S')}] building the Plone template"
          + (f" (site + {size // 2**20} MiB File)" if size else ""), flush=True)
    options = {"size": size} if size else {}
    return build_template(Path(workdir) / "template", **options)["directory"]


class GranianProcess(ServerProcess):
    """granian's main process; its RSS counts its worker process too."""

    @property
    def port(self):
        return self.ports["granian"]

    def rss(self):
        return sum(rss_bytes(pid) for pid in process_tree(self.pid))


def start_variant(name, directory, template_dir):
    """Start variant ``name`` in the new instance folder ``directory``, on a fresh copy of the
    template; return it."""
    _, kind, seekable = VARIANTS[name]
    directory = Path(directory)
    if kind == "txzserver":
        conf = new_instance(directory, http_server(0, h2c=True), f"server-threads {THREADS}\n")
        copy_instance_data(template_dir, directory)
        return ServerProcess(conf).start()
    conf = new_instance(directory, http_server(0))
    copy_instance_data(template_dir, directory)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    port = free_port()
    if kind == "granian":
        env.update(TXZSERVER_BENCH_CONF=str(conf), TXZSERVER_BENCH_PORT=str(port))
        argv = [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--blocking-threads", str(THREADS), "--no-ws", "tests.bench.granian_app:app"]
        return GranianProcess(conf, argv=argv, env=env).start()
    argv = [sys.executable, "-m", "tests.support.waitress_server", str(conf), str(port),
            str(THREADS)] + (["--seekable"] if seekable else [])
    return ServerProcess(conf, argv=argv, env=env).start()


def stop_quietly(server):
    """Stop ``server``; report instead of raising, so the other servers are still stopped."""
    try:
        server.stop(timeout=30)
    except Exception as exc:  # killed by ServerProcess.stop after the timeout
        print(f"  (server {server.pid} needed SIGKILL: {exc!r})", flush=True)
