"""Headless Chromium over HTTP/3 (QUIC forced on the server's origin) with its RFC 9220 feature
on: the classic UI's toast WebSocket opens with an extended CONNECT on the page's QUIC
connection ("CONNECT /Plone/ws HTTP/3" 200 in the access log, no WebSocket over TCP), and a
reviewer's toast shows when an editor submits a page."""

import pytest

from tests.support.browser import classic_login, load
from tests.support.h3browser import chromium
from tests.support.restapi import add_users
from tests.support.server import wait_for

from .test_browser_wsh2 import COUNT_CLOSES, PASSWORD, access_log, submit_until_the_toast_shows


@pytest.fixture(scope="module")
def h3_server(servers):
    server = servers.start("browser-wsh3", threads=2, https=True, http3=True,
                           extra="<websocket>\n  path /ws\n</websocket>")
    add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Contributor", "Editor"]},
              PASSWORD)
    return server


def test_chromium_opens_the_websocket_over_h3_and_the_toast_shows(h3_server, tls_files, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    port = h3_server.ports["https"]
    driver = chromium(port, tls_files["cert"], tmp_path / "profile", ("EnableWebsocketsOverHttp3",))
    try:
        driver.set_window_size(1280, 900)  # the login form's button is not covered there
        base = f"https://localhost:{port}/Plone"
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_CLOSES})
        classic_login(driver, base, "rita", PASSWORD)
        load(driver, base)
        assert driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h3"
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(
            "return window.txzserverToasts && window.txzserverToasts.connected"))
        # the reviewer's toast below: the __ac cookie authenticated the WebSocket over HTTP/3
        wait_for(lambda: '"CONNECT /Plone/ws HTTP/3" 200' in access_log(h3_server), 30,
                 what="the WebSocket's access line")
        lines = [line for line in access_log(h3_server).splitlines() if "/Plone/ws" in line]
        assert lines and all("CONNECT" in line and "HTTP/3" in line for line in lines), lines
        submit_until_the_toast_shows(driver, h3_server, "HTTP/3")
    finally:
        driver.quit()
