"""The Markdown tables of the documentation pages (docs/*.md), for tests that assert the figures
the documentation states."""

from .instance import ROOT

DOCS = ROOT / "docs"


def table_rows(page, heading):
    """The rows of the first table below ``heading`` (e.g. "# Why txzserver") of ``page`` (e.g. "why.md"),
    as lists of cells.

    The header row comes first; the ``|---|`` line is left out. Cells are stripped; a cell
    must not contain ``|``.
    """
    text = "\n" + (DOCS / page).read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    rows = []
    for line in text[start:].splitlines():
        if line.startswith("#"):  # the next section: no table (more) here
            break
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                rows.append(cells)
        elif rows:
            break
    return rows


def table_row(page, heading, first_cell):
    """The cells after ``first_cell`` in that row of the table below ``heading`` of ``page``."""
    for row in table_rows(page, heading):
        if row[0] == first_cell:
            return row[1:]
    raise AssertionError(f"docs/{page}, {heading!r}: no table row starting with {first_cell!r}")
