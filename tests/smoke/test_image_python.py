"""The image's Python (Debian bookworm's 3.11.2) and txzserver's fix for its AST constructor
(txzserver/zope/compilelock.py): publisher threads compiling page templates at once got
``SystemError: AST constructor recursion depth mismatch`` (500s, templates left broken)."""

import json
import pathlib

import pytest

from .test_image import IMAGE, docker

NEEDS_STACK = False
SCRIPT = pathlib.Path(__file__).with_name("ast_threads.py")


@pytest.fixture(scope="session", autouse=True)
def both_instances_in_the_pool():
    """Overrides the conftest's wait for the compose stack: nothing here uses it."""


def run_script(*args):
    out = docker("run", "--rm", "-v", f"{SCRIPT}:/probe/ast_threads.py:ro", "--entrypoint", "python3",
                 IMAGE, "/probe/ast_threads.py", *args, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_threads_compile_at_once_without_errors_with_the_lock():
    # the bug is there on this Python: a run shows it most times, up to five tries to see it
    for _ in range(5):
        unlocked = run_script()
        if unlocked["errors"]:
            break
    assert unlocked["python"] == "3.11.2" and not unlocked["locked"]
    assert any("recursion depth mismatch" in e for e in unlocked["errors"]), unlocked
    locked = run_script("lock")
    assert locked["locked"] and locked["errors"] == [], locked
