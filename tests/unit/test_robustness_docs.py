"""docs/security.md's "Security and robustness" table is rendered from tests/robustness.py, and every
test module a row names uses that row's figures (so a row claims what its tests assert)."""

import pytest

from tests import robustness
from tests.support.instance import ROOT


def test_the_pages_table_is_the_rendered_rows():
    current = robustness.page_parts(robustness.PAGE.read_text())[1]
    assert current == robustness.render(), (
        "docs/security.md's Security and robustness table differs from tests/robustness.py: "
        "python -m tests.robustness --docs")


@pytest.mark.parametrize("row", robustness.TABLE, ids=lambda row: row.key)
def test_every_module_a_row_names_uses_the_row(row):
    for path in row.tests:
        if path.startswith("tests/unit/"):  # protocol code: named for the reader, no figures
            continue
        text = (ROOT / path).read_text()
        assert row.key in robustness.referenced_rows(text), (
            f"{path} is named by the row {row.key!r} but does not use ROWS[{row.key!r}]")


@pytest.mark.parametrize("row", robustness.TABLE, ids=lambda row: row.key)
def test_every_figure_of_a_row_is_in_its_text(row):
    text = row.attack + row.outcome
    for name in row.figures:
        assert "{" + name + "}" in text, f"{row.key}: figure {name!r} is not shown in the page"
