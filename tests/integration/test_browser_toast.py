"""Headless Chromium on Classic UI: a Reviewer sees the toast when an editor submits a page,
and the "updates missed" toast when the server's event bus really lost events (its broker
stopped while a commit was published, as in test_notifications.py)."""

import os
import time
from pathlib import Path

import pytest

from tests.robustness import ROWS
from tests.support.cluster import Cluster
from tests.support.instance import ADMIN, ROOT
from tests.support.restapi import add_users, api
from tests.support.browser import classic_login, load, start_chromium
from tests.support.wsclient import Collector, basic

ARTIFACTS = Path(os.environ.get("TXZSERVER_ARTIFACTS", ROOT / "test-artifacts"))
PASSWORD = "secret-Passw0rd"
GAP = ROWS["bus_gap"].figures


@pytest.fixture(scope="module")
def broker(tmp_path_factory, plone_template):
    """A real `txzserver broker` (a Cluster used for its broker only: one instance is enough,
    it hears its own events back through the broker and numbers them)."""
    cluster = Cluster(tmp_path_factory.mktemp("toast-bus"), plone_template)
    try:
        cluster.start_broker()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def toast_server(servers, broker):
    bus = (f"<event-bus>\n  publish {broker.bus['publish']}\n  subscribe {broker.bus['subscribe']}\n"
           "</event-bus>")
    server = servers.start("toast", threads=2, extra=f"<websocket>\n  path /ws\n</websocket>\n{bus}")
    add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Contributor", "Editor"]},
              PASSWORD)
    return server


@pytest.fixture
def chromium(tmp_path):
    driver = start_chromium(tmp_path / "profile", "--window-size=1280,900")
    yield driver
    driver.quit()


def test_reviewer_sees_toast_when_a_page_is_submitted(toast_server, chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    # localhost, not 127.0.0.1: plone.app.theming leaves 127.0.0.1 unthemed by default.
    base = toast_server.url("/Plone").replace("127.0.0.1", "localhost")
    classic_login(chromium, base, "rita", PASSWORD)
    load(chromium, base)
    script = chromium.find_elements(By.CSS_SELECTOR, "script[src*='txzserver-toast']")
    assert script, "the toast script is not on the Classic UI page"
    # The page's WebSocket is open once the server has a subscriber for rita.
    WebDriverWait(chromium, 30).until(
        lambda d: d.execute_script("return window.txzserverToasts && window.txzserverToasts.connected"))

    api(toast_server, "POST", "/Plone", user=("eddie", PASSWORD),
        json={"@type": "Document", "id": "needs-review", "title": "Please review me"})
    api(toast_server, "POST", "/Plone/needs-review/@workflow/submit", user=("eddie", PASSWORD))

    toast = WebDriverWait(chromium, 30).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "#txzserver-toasts .txzserver-toast-notification")))
    assert "Please review me" in toast.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium.save_screenshot(str(ARTIFACTS / "toast-reviewer.png"))
    assert (ARTIFACTS / "toast-reviewer.png").stat().st_size > 1000


def lose_events(broker, server, watcher, path):
    """Stop the broker, edit ``path`` (that event is lost: nobody to forward it), start it again
    and edit until an event crosses: the server has then sent its clients a gap, before it."""
    seen = len(watcher.events(type="modified", path=path))
    broker.broker.terminate()
    assert broker.broker.wait(10) == 0, "broker did not stop cleanly on SIGTERM"
    api(server, "PATCH", path, json={"title": "lost"})
    broker.start_broker()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(watcher.events(type="modified", path=path)) == seen:
        api(server, "PATCH", path, json={"title": f"after {time.monotonic():.1f}"})
        time.sleep(0.5)
    assert len(watcher.events(type="modified", path=path)) > seen, "no event crossed in 30 s"
    gaps = [m for m in watcher.messages if m.get("type") == "gap"]
    assert gaps, f"the server announced no gap: {watcher.messages[-5:]}"
    return gaps[-1]


def test_gap_toast_offers_a_reload_on_a_folder_listing(toast_server, broker, chromium):
    """A real gap (see lose_events) shows "Some updates were missed" on every page; on a
    listing, Reload reloads. The lost edits are to a private page the reviewer cannot see:
    the gap is all her page hears of them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    for folder, item in (("/Plone", {"@type": "Folder", "id": "gap-folder", "title": "Gap folder"}),
                         ("/Plone/gap-folder", {"@type": "Document", "id": "gap-page",
                                                "title": "Gap page"}),
                         ("/Plone", {"@type": "Document", "id": "gap-private", "title": "Private"})):
        api(toast_server, "POST", folder, json=item)
    for published in ("/Plone/gap-folder", "/Plone/gap-folder/gap-page"):
        api(toast_server, "POST", f"{published}/@workflow/publish")
    lost = "/Plone/gap-private"
    watcher = Collector(toast_server.url(f"/Plone/ws?path={lost}").replace("http://", "ws://"),
                        basic(*ADMIN), name="admin").start_and_wait()
    base = toast_server.url("/Plone").replace("127.0.0.1", "localhost")
    classic_login(chromium, base, "rita", PASSWORD)
    ready = "return window.txzserverToasts && window.txzserverToasts.connected"
    gap_toast = (By.CSS_SELECTOR, "#txzserver-toasts .txzserver-toast-gap")
    try:
        load(chromium, f"{base}/gap-folder")
        assert "template-listing_view" in chromium.find_element(By.TAG_NAME, "body").get_attribute("class")
        WebDriverWait(chromium, 30).until(lambda d: d.execute_script(ready))
        chromium.execute_script("window.notReloadedYet = true;")  # gone once the page reloads
        gap = lose_events(broker, toast_server, watcher, lost)
        assert gap["missed"] >= 1
        toast = WebDriverWait(chromium, 30).until(EC.visibility_of_element_located(gap_toast))
        assert GAP["toast"] in toast.text
        assert len(chromium.find_elements(*gap_toast)) == 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        chromium.save_screenshot(str(ARTIFACTS / "toast-gap.png"))
        toast.find_element(By.CSS_SELECTOR, ".txzserver-toast-reload").click()
        WebDriverWait(chromium, 30).until(lambda d: d.execute_script(
            "return document.readyState === 'complete' && window.notReloadedYet === undefined"))

        load(chromium, f"{base}/gap-folder/gap-page")  # not a listing: the notice only
        WebDriverWait(chromium, 30).until(lambda d: d.execute_script(ready))
        lose_events(broker, toast_server, watcher, lost)
        toast = WebDriverWait(chromium, 30).until(EC.visibility_of_element_located(gap_toast))
        assert GAP["toast"] in toast.text
        assert not toast.find_elements(By.CSS_SELECTOR, ".txzserver-toast-reload")
        assert not chromium.find_elements(By.CSS_SELECTOR, ".txzserver-toast-modified")  # private
    finally:
        watcher.stop()
