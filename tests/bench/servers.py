"""The three server variants of the benchmark, each on its own copy of the Plone template."""

import os
import sys
from pathlib import Path

from tests.support.instance import ROOT, copy_instance_data, http_server, new_instance
from tests.support.server import ServerProcess, free_port

THREADS = 2

# name -> (label for tables, kind, seekable)
VARIANTS = {
    "txzserver": ("txzserver (server-threads 2)", "txzserver", False),
    "waitress": ("waitress stock (threads 2)", "waitress", False),
    "waitress-seekable": ("waitress + seekable iterator (threads 2)", "waitress", True),
}


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
    argv = [sys.executable, "-m", "tests.support.waitress_server", str(conf), str(free_port()),
            str(THREADS)] + (["--seekable"] if seekable else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return ServerProcess(conf, argv=argv, env=env).start()


def stop_quietly(server):
    """Stop ``server``; report instead of raising, so the other servers are still stopped."""
    try:
        server.stop(timeout=30)
    except Exception as exc:  # killed by ServerProcess.stop after the timeout
        print(f"  (server {server.pid} needed SIGKILL: {exc!r})", flush=True)
