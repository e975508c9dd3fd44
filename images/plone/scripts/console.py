"""console: Python with the Zope root bound to ``app``. On a terminal (`docker run -it ...
console`) an interactive prompt; otherwise the script on stdin is run as a whole, as `python -`
would, so a block needs no blank line after it, and a syntax error or an exception ends the
command with its traceback and exit status 1 (the prompt would print it and carry on, exit 0:
a failed script piped in looked like a success)."""
import code
import sys

namespace = {"app": app, "__name__": "__console__"}  # noqa: F821 (bound by txzserver run)
if sys.stdin.isatty():
    code.interact(banner="txzserver console: the Zope root is `app`; commit with transaction.commit()",
                  local=namespace)
else:
    exec(compile(sys.stdin.read(), "<stdin>", "exec"), namespace)
