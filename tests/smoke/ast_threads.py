"""Run in the plone image by tests/smoke/test_image_python.py: six threads convert ASTs while
another makes garbage whose finalizers run Python code, so the GIL changes hands inside the AST
constructor as it does in a Zope process. With the argument "lock" txzserver's compilelock is
applied first. Prints one JSON line: {"python", "locked", "errors"}."""

import ast
import builtins
import json
import sys
import threading

BUILTIN_COMPILE = builtins.compile
#: Compiles per thread: a whole run (the locked one) takes about 8 s; an unlocked run shows the
#: error in most runs and stops at the first one.
ROUNDS = 40
SOURCE = "\n".join(
    f"def f{i}(a, b):\n    return [(x, {{'k': (a + b) * x}}) for x in range({i}) if x % 2 or (a and b)]"
    for i in range(300))


class Finalized:
    def __del__(self):
        sum(range(2000))  # Python code in a finalizer: the GIL may change hands here


def make_garbage():
    for _ in range(200000):
        item = Finalized()
        item.cycle = item


def convert(errors, seen):
    """Compile ROUNDS times, or until a thread has seen the error (one is enough to show it)."""
    for _ in range(ROUNDS):
        if seen.is_set():
            return
        try:
            builtins.compile(ast.parse(SOURCE), "<t>", "exec")
        except SystemError as exc:
            errors.append(str(exc))
            seen.set()


def main():
    if sys.argv[1:] == ["lock"]:
        from txzserver.zope import compilelock
        compilelock.apply()
    errors = []
    threading.Thread(target=make_garbage, daemon=True).start()
    seen = threading.Event()
    threads = [threading.Thread(target=convert, args=(errors, seen)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"python": sys.version.split()[0], "locked": builtins.compile is not BUILTIN_COMPILE,
                      "errors": errors}))


if __name__ == "__main__":
    main()
