"""Event urls come from the site's canonical URL (registry txzserver.canonical_url), not from
the Host of the request that made the change: a script inside Zope (real Plone site, real
subscribers; tests/support/canonical_url_script.py) edits under a request whose Host is
evil.example and records what would be published.
"""


import pytest

from tests.robustness import ROWS
from tests.support.instance import ROOT, SITE_ID, run_site_script

SCRIPT = ROOT / "tests" / "support" / "canonical_url_script.py"
FIGURES = ROWS["canonical_url"].figures


@pytest.fixture(scope="module")
def urls(tmp_path_factory, plone_template):
    return run_site_script(tmp_path_factory.mktemp("canonical-url"), plone_template, SCRIPT,
                           SITE_ID, FIGURES["canonical"])[1]


def test_without_a_canonical_url_the_request_host_shows(urls):
    """What the setting is for: Zope's absolute_url() follows the request."""
    assert urls["record_before"] is None
    assert urls["unset"] == [f"https://evil.example/{SITE_ID}/canon-a"]


def test_with_one_every_event_url_is_built_from_it(urls):
    canonical = FIGURES["canonical"]
    assert urls["created"] == [f"{canonical}/canon-f", f"{canonical}/canon-f/canon-b"]
    assert urls["removed"] == [f"{canonical}/canon-a"]
