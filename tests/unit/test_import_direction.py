"""tools/check_imports.py (run by `make lint`): the package's imports point one way."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tools" / "check_imports.py"


def run_check(src):
    return subprocess.run([sys.executable, str(CHECK), str(src)], capture_output=True, text=True)


def test_the_tree_follows_the_rules():
    result = run_check(ROOT / "src" / "txzserver")
    assert result.returncode == 0, result.stderr


def test_a_wrong_way_import_fails_the_check(tmp_path):
    tree = tmp_path / "txzserver"
    shutil.copytree(ROOT / "src" / "txzserver", tree)
    site = tree / "server" / "site.py"
    site.write_text(site.read_text().replace(
        "from .accesslog import AccessLog", "from ..app import run\nfrom .accesslog import AccessLog"))
    result = run_check(tree)
    assert result.returncode == 1
    assert "txzserver.server.site imports txzserver.app (server/ may not use app/)" in result.stderr


def test_relative_and_absolute_forms_are_both_seen(tmp_path):
    tree = tmp_path / "txzserver"
    shutil.copytree(ROOT / "src" / "txzserver", tree)
    (tree / "websocket" / "extra.py").write_text(
        "from txzserver.server import errors\nfrom .. import zope\nfrom .. import __version__\n")
    result = run_check(tree)
    assert result.returncode == 1
    assert "imports txzserver.server (websocket/ may not use server/)" in result.stderr
    assert "imports txzserver.zope (websocket/ may not use zope/)" in result.stderr
    assert "__version__" not in result.stderr  # the root's version is allowed
