"""Fail when a module of txzserver imports against the agreed direction (docs/architecture.md,
"Package map").

server/, websocket/ and bus/ use only themselves, the package root (``__version__``) and the
leaves: ``transfer``, ``aftercommit``, ``metrics`` (the per-server Prometheus registry: server/
counts requests into it, zope/ and app.py register readers of their state; a leaf so that
every side may share it without importing another) and ``jsonlog`` (the JSON log formatter,
for zope/'s logging setup and PasteDeploy inis). config/ uses itself and bus/ (its defaults);
tasks/ uses server/ and bus/; zope/ and plone/ may use the protocol packages (plone/ also
tasks/); app.py, cli.py and paste.py may use everything. Usage:

    python tools/check_imports.py [SRC_DIR]     (default: src/txzserver); exit 1 on a violation
"""

import ast
import sys
from pathlib import Path

PACKAGE = "txzserver"
# the root package and shared leaf modules: anyone may import them
LEAVES = {"", "transfer", "aftercommit", "metrics", "jsonlog"}
ALLOWED = {
    "server": {"server"},
    "websocket": {"websocket"},
    "bus": {"bus"},
    "config": {"config", "bus"},
    "zope": {"zope", "server", "websocket", "bus", "config"},
    "plone": {"plone", "bus", "tasks"},
    "tasks": {"tasks", "server", "bus"},
    "ctl": {"config", "zope"},
    "transfer": set(),
    "aftercommit": set(),
    "metrics": set(),
    "jsonlog": set(),
    "listen": {"bus"},
}


def owner(module):
    """"txzserver.server.http1" -> "server"; "txzserver" -> ""."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(path, module):
    """Absolute names of the txzserver modules ``path`` imports (with their line numbers)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == PACKAGE:  # "from txzserver import x", "from .. import x": x may be a module
                for alias in node.names:
                    yield node.lineno, PACKAGE if alias.name == "__version__" else f"{PACKAGE}.{alias.name}"
            else:
                yield node.lineno, name


def violations(src):
    src = Path(src)
    for path in sorted(src.rglob("*.py")):
        relative = path.relative_to(src.parent).with_suffix("")
        module = ".".join(relative.parts)
        if module.endswith(".__init__"):
            module = module[: -len(".__init__")]
        rules = ALLOWED.get(owner(module))
        if rules is None:
            continue  # app, cli, paste and the root: may use everything
        for lineno, name in imported_modules(path, module):
            if name != PACKAGE and not name.startswith(PACKAGE + "."):
                continue
            target = owner(name)
            if target not in rules and target not in LEAVES:
                yield f"{path}:{lineno}: {module} imports {name} ({owner(module)}/ may not use {target}/)"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    found = list(violations(argv[0] if argv else "src/txzserver"))
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"{len(found)} import(s) against the package direction", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
