"""One thread at a time in ``compile()`` on the Pythons whose AST conversion is not thread-safe.

CPython 3.11.0 to 3.11.4 keep the AST constructor's recursion depth in state shared by all
threads (gh-95185); two publisher threads converting an AST at once (Chameleon compiling a
page template on its first use, RestrictedPython a script) can end in ``SystemError: AST
constructor recursion depth mismatch``, a 500 and, worse, a template that stays broken. Debian
bookworm's Python (the images') is 3.11.2; 3.11.5 fixed it (gh-106905). ``ast.parse`` and
compiling an AST both go through the builtin ``compile``, so serializing that builtin is enough;
it runs rarely once templates are compiled. Tests: tests/unit/test_compilelock.py, and
tests/smoke/test_image_python.py (the error on the image's Python without the lock, none with it).
"""

import builtins
import sys
import threading

#: The Pythons with the shared recursion depth (gh-95185 to gh-106905).
AFFECTED = (3, 11, 0) <= sys.version_info[:3] < (3, 11, 5)

_original = builtins.compile
_lock = threading.RLock()


def serialized_compile(*args, **kwargs):
    """``compile`` holding the process-wide lock (re-entrant: a finalizer may compile too)."""
    with _lock:
        return _original(*args, **kwargs)


def apply(force=False):
    """Install ``serialized_compile`` as the builtin on an affected Python (or when ``force``);
    returns whether it is installed."""
    if AFFECTED or force:
        builtins.compile = serialized_compile
    return builtins.compile is serialized_compile
