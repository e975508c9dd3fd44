"""Sphinx configuration of txzserver's documentation site (MyST Markdown, the Furo theme).

`make docs` builds it into build/docs with warnings as errors; `make lint` builds it with the
dummy builder to check every internal link and anchor (no network: external links are not
followed).
"""

from importlib.metadata import version as _version
from pathlib import Path

project = "txzserver"
author = "the txzserver authors"
copyright = "the txzserver authors"
release = _version("txzserver")
version = release

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# Markdown headings down to ### get anchors, so pages link to each other's sections
# (`[Health checks](operators/health.md#health-checks)`); a missing page or anchor is a warning,
# and warnings are errors in `make docs` and `make lint`.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "deflist"]
suppress_warnings = []
nitpicky = True

html_theme = "furo"
html_title = f"txzserver {release}"
html_static_path = []
html_copy_source = False
html_show_sphinx = False


# -- the changelog page is CHANGES.md (written at a release) once it exists -------------------
_CHANGES = Path(__file__).resolve().parents[1] / "CHANGES.md"


def _changelog(app, docname, source):
    """Replace the changelog page's placeholder with CHANGES.md, under the page's own title."""
    if docname != "changelog" or not _CHANGES.exists():
        return
    app.env.note_dependency(str(_CHANGES))
    lines = _CHANGES.read_text().splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and lines[0].startswith("# "):  # its own title: the page has one
        lines.pop(0)
    source[0] = "# Changelog\n\n" + "\n".join(lines) + "\n"


def setup(app):
    app.connect("source-read", _changelog)
