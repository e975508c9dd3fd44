"""Headless Chromium on Classic UI: a Reviewer sees the toast when an editor submits a page."""

import os
import shutil
from pathlib import Path

import pytest

from tests.support.instance import ROOT
from tests.support.restapi import add_users, api

ARTIFACTS = Path(os.environ.get("TXZSERVER_ARTIFACTS", ROOT / "test-artifacts"))
PASSWORD = "secret-Passw0rd"




@pytest.fixture(scope="module")
def toast_server(servers):
    server = servers.start("toast", threads=2, extra="<websocket>\n  path /ws\n</websocket>")
    add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Contributor", "Editor"]},
              PASSWORD)
    return server


@pytest.fixture
def chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are needed (make test installs them as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_reviewer_sees_toast_when_a_page_is_submitted(toast_server, chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    # localhost, not 127.0.0.1: plone.app.theming leaves 127.0.0.1 unthemed by default.
    base = toast_server.url("/Plone").replace("127.0.0.1", "localhost")
    chromium.get(f"{base}/login")
    chromium.find_element(By.ID, "__ac_name").send_keys("rita")
    chromium.find_element(By.ID, "__ac_password").send_keys(PASSWORD)
    chromium.find_element(By.CSS_SELECTOR, "[name='buttons.login']").click()
    WebDriverWait(chromium, 30).until(lambda d: d.get_cookie("__ac") is not None)
    chromium.get(base)
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


def log_in(chromium, base, user, password):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.get(f"{base}/login")
    chromium.find_element(By.ID, "__ac_name").send_keys(user)
    chromium.find_element(By.ID, "__ac_password").send_keys(password)
    chromium.find_element(By.CSS_SELECTOR, "[name='buttons.login']").click()
    WebDriverWait(chromium, 30).until(lambda d: d.get_cookie("__ac") is not None)


def test_gap_toast_offers_a_reload_on_a_folder_listing(toast_server, chromium):
    """Issue 11: a {"type": "gap"} message (fed to the page's handler: this server has no bus
    to lose events on) shows "Some updates were missed"; on a listing, Reload reloads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    api(toast_server, "POST", "/Plone", user=("eddie", PASSWORD),
        json={"@type": "Folder", "id": "gap-folder", "title": "Gap folder"})
    api(toast_server, "POST", "/Plone/gap-folder", user=("eddie", PASSWORD),
        json={"@type": "Document", "id": "gap-page", "title": "Gap page"})
    base = toast_server.url("/Plone").replace("127.0.0.1", "localhost")
    log_in(chromium, base, "eddie", PASSWORD)
    gap = {"type": "gap", "instance": "alpha", "missed": 3}
    ready = "return window.txzserverToasts && window.txzserverToasts.connected"

    chromium.get(f"{base}/gap-folder")
    assert "template-listing_view" in chromium.find_element(By.TAG_NAME, "body").get_attribute("class")
    WebDriverWait(chromium, 30).until(lambda d: d.execute_script(ready))
    chromium.execute_script("window.txzserverToasts.handle(arguments[0]);"
                            "window.txzserverToasts.handle(arguments[0]);"
                            "window.notReloadedYet = true;", gap)
    toast = WebDriverWait(chromium, 30).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "#txzserver-toasts .txzserver-toast-gap")))
    assert "Some updates were missed" in toast.text
    assert len(chromium.find_elements(By.CSS_SELECTOR, ".txzserver-toast-gap")) == 1  # not stacked
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium.save_screenshot(str(ARTIFACTS / "toast-gap.png"))
    toast.find_element(By.CSS_SELECTOR, ".txzserver-toast-reload").click()
    WebDriverWait(chromium, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && window.notReloadedYet === undefined"))

    chromium.get(f"{base}/gap-folder/gap-page")  # not a listing: the notice only
    WebDriverWait(chromium, 30).until(lambda d: d.execute_script(ready))
    chromium.execute_script("window.txzserverToasts.handle(arguments[0]);", gap)
    toast = WebDriverWait(chromium, 30).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "#txzserver-toasts .txzserver-toast-gap")))
    assert "Some updates were missed" in toast.text
    assert not toast.find_elements(By.CSS_SELECTOR, ".txzserver-toast-reload")
