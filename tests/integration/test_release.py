"""The release as a user meets it: the sdist and wheel that `python -m build` makes from this
tree (as the release workflow builds them: the build backend from the lock), checked by `twine
check --strict`; the wheel installed into a fresh virtualenv, whose own `txzserver mkinstance` and
`serve` answer Plone pages; the version written once; a changelog fragment reaching the next entry.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

import txzserver
from tests.support.instance import BIG_FILE_ID, ROOT, SITE_ID, copy_instance_data
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(900)

BIN = Path(sys.executable).parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CONSTRAINTS = ROOT / "constraints.txt"
#: files of the tree the sdist carries besides the package
SDIST_EXTRAS = {"pyproject.toml", "README.md", "LICENSE", "CHANGES.md", "MANIFEST.in"}
TOAST_JS = "src/txzserver/plone/static/txzserver-toast.js"


def run(argv, **kwargs):
    """Run ``argv``; its output, or a failure that shows it."""
    result = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True,
                            timeout=600, **kwargs)
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def tree_files():
    """The tree's files as a commit would take them: tracked and new, not the ignored ones."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(sdist, wheel, tree) built from a copy of the tree, so the build writes nothing into the
    working tree others use. `python -m build` makes the sdist and then the wheel from it (which
    proves the sdist holds what a build needs); uv makes the isolated build environment with the
    setuptools and wheel of the lock, as the release workflow does."""
    base = tmp_path_factory.mktemp("release")
    tree, out = base / "tree", base / "dist"
    for name in tree_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    run([BIN / "python", "-m", "build", "--installer", "uv", "--outdir", out, tree],
        env=build_env(), cwd=base)
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert [p.name for p in sdists] == [f"txzserver-{VERSION}.tar.gz"]
    assert [p.name for p in wheels] == [f"txzserver-{VERSION}-py3-none-any.whl"]
    return sdists[0], wheels[0], tree


def build_env():
    """This environment without a source path or an active venv; uv takes the lock."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["UV_CONSTRAINT"] = str(CONSTRAINTS)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def test_version_is_written_once():
    """pyproject.toml's version is what the package, the command and the images' label say."""
    assert txzserver.__version__ == VERSION
    assert run([BIN / "txzserver", "--version"]).strip() == f"txzserver {VERSION}"
    # images/build.sh's own line that reads the version for the OCI version label
    line = next(line for line in (ROOT / "images" / "build.sh").read_text().splitlines()
                if line.startswith("VERSION="))
    assert run(["sh", "-c", f'{line}; printf %s "$VERSION"'], cwd=ROOT) == VERSION


def test_changelog_has_the_release_and_takes_fragments(tmp_path):
    """A released version has its CHANGES.md entry; a fragment made as changes/README.md says
    lands under its type's heading in the next entry (towncrier with the project's config)."""
    changes = (ROOT / "CHANGES.md").read_text()
    assert "<!-- towncrier release notes start -->" in changes
    if not Version(VERSION).is_devrelease:
        assert re.search(rf"^## {re.escape(VERSION)} \(\d{{4}}-\d\d-\d\d\)$", changes, re.M), VERSION
    for name in ("pyproject.toml", "CHANGES.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "changes", tmp_path / "changes")
    towncrier = BIN / "towncrier"
    run([towncrier, "create", "--content", "Listeners take a backlog.", "7.feature.md"], cwd=tmp_path)
    run([towncrier, "create", "--content", "A crash at stop is gone.", "+stop.bugfix.md"], cwd=tmp_path)
    draft = run([towncrier, "build", "--draft", "--version", "99.0.0"], cwd=tmp_path)
    entry = draft[draft.index("## 99.0.0 ("):]
    assert entry.index("### Added") < entry.index("- Listeners take a backlog. "
                                                  "([#7](https://github.com/txzserver/txzserver/issues/7))")
    assert entry.index("### Fixed") < entry.index("- A crash at stop is gone.")
    # changes/README.md (how to write a fragment) is no fragment: none of its text is in the entry
    assert "Changelog fragments" not in entry and "gathered into" not in entry


def test_twine_check_passes(dist):
    sdist, wheel, _ = dist
    output = run([BIN / "twine", "check", "--strict", sdist, wheel])
    assert output.count("PASSED") == 2, output


def test_sdist_and_wheel_hold_the_package(dist):
    """Every file of the tree under src/ is in the sdist (schema.xml, zcml, profiles, zope.conf.in,
    the toast script), every file of the package in the wheel, with LICENSE and the metadata."""
    sdist, wheel, tree = dist
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    sources = {name for name in tree_files() if name.startswith("src/txzserver/")}
    assert sources and not sources - in_sdist, sorted(sources - in_sdist)
    assert not SDIST_EXTRAS - in_sdist, sorted(SDIST_EXTRAS - in_sdist)
    assert not {name for name in in_sdist if name.startswith(("tests/", "images/", ".github/"))}
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
        info = f"txzserver-{VERSION}.dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    packaged = {name.removeprefix("src/") for name in sources}
    assert not packaged - in_wheel, sorted(packaged - in_wheel)
    assert f"{info}/LICENSE" in in_wheel or f"{info}/licenses/LICENSE" in in_wheel
    assert f"\nVersion: {VERSION}\n" in metadata
    assert "\nLicense: ZPL-2.1\n" in metadata
    assert "\nClassifier: License :: OSI Approved :: Zope Public License\n" in metadata
    assert "\nRequires-Dist: Products.CMFPlone; extra == \"plone\"\n" in metadata
    assert "txzserver = txzserver.cli:main" in entry_points
    assert "main = txzserver.paste:server_runner" in entry_points


def test_wheel_in_a_fresh_venv_serves_plone(dist, plone_template, tmp_path):
    """`pip install txzserver[plone]` as a user does it, from the built wheel (uv with the lock:
    fast from uv's cache), then that venv's mkinstance and serve on a copy of the Plone
    template (the site and its 100 MB File): the front page, the File, the add-on's script and
    view, all from the installed package (not this source tree)."""
    _, wheel, tree = dist
    venv = tmp_path / "venv"
    run([BIN / "uv", "venv", "--quiet", "--python", BIN / "python", venv], cwd=tmp_path)
    run([BIN / "uv", "pip", "install", "--quiet", "--python", venv / "bin" / "python",
         "-c", CONSTRAINTS, f"txzserver[plone] @ {wheel.as_uri()}"], env=build_env(), cwd=tmp_path)
    env = build_env()
    env.pop("UV_CONSTRAINT")
    where = run([venv / "bin" / "python", "-c", "import txzserver; print(txzserver.__file__)"],
                env=env, cwd=tmp_path).strip()
    assert Path(where).is_relative_to(venv), where
    assert run([venv / "bin" / "txzserver", "--version"], env=env).strip() == f"txzserver {VERSION}"

    instance = tmp_path / "instance"
    made = run([venv / "bin" / "txzserver", "mkinstance", instance, "--user", "admin:release-test",
                "--address", "127.0.0.1:0"], env=env, cwd=tmp_path)
    conf = instance / "etc" / "zope.conf"
    assert f"created {conf}" in made
    copy_instance_data(plone_template["directory"], instance)
    server = ServerProcess(conf, argv=[str(venv / "bin" / "txzserver"), "serve", str(conf)], env=env)
    server.start(timeout=600)
    try:
        with httpx.Client(timeout=120) as client:
            page = client.get(server.url(f"/{SITE_ID}"))
            assert page.status_code == 200
            assert page.headers["server"] == f"txzserver/{VERSION}"
            assert "<title>" in page.text and "plone" in page.text.lower()
            digest, size = hashlib.sha256(), 0
            with client.stream("GET", server.url(f"/{SITE_ID}/{BIG_FILE_ID}/@@download/file")) as big:
                assert big.status_code == 200
                for chunk in big.iter_bytes():
                    digest.update(chunk)
                    size += len(chunk)
            assert (size, digest.hexdigest()) == (plone_template["big_size"],
                                                  plone_template["big_sha256"])
            script = client.get(server.url(f"/{SITE_ID}/++plone++txzserver/txzserver-toast.js"))
            assert script.status_code == 200
            assert script.content == (tree / TOAST_JS).read_bytes()
            principal = client.get(server.url(f"/{SITE_ID}/@@txzserver-principal"))
            assert principal.status_code == 200
            assert principal.json()["tokens"] == ["Anonymous"]
    finally:
        assert server.stop() == 0, server.log_text()
