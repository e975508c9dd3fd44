"""Headless Chromium over TLS (the test CA's server certificate) with HTTP/2: the toast's
WebSocket opens with an extended CONNECT (RFC 8441) on the page's h2 connection (the server's
access log says so: "CONNECT /Plone/ws HTTP/2" 200, and no WebSocket upgrade over HTTP/1.1),
and a reviewer's toast shows when an editor submits a page."""

import re

import pytest

from tests.support.restapi import add_users, api
from tests.support.browser import classic_login, load, spki_hash, start_chromium
from tests.support.server import wait_for

PASSWORD = "secret-Passw0rd"


@pytest.fixture(scope="module")
def tls_server(servers):
    server = servers.start("browser-wsh2", threads=2, https=True,
                           extra="<websocket>\n  path /ws\n</websocket>")
    add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Contributor", "Editor"]},
              PASSWORD)
    return server


@pytest.fixture
def chromium(tmp_path, tls_files):
    driver = start_chromium(
        tmp_path / "profile",
        # the test CA is not in the profile's trust store: accept its certificate
        f"--ignore-certificate-errors-spki-list={spki_hash(tls_files['cert'])}",
        "--ignore-certificate-errors", "--window-size=1280,900",
        # the server listens on 127.0.0.1 only: Chromium tried ::1 first and now and
        # then met something else on that port there (an error page, no request)
        "--host-resolver-rules=MAP localhost 127.0.0.1")
    yield driver
    driver.quit()


#: run in every page before its own scripts: counts the closes of the page's WebSockets
COUNT_CLOSES = """(function () {
  var Native = window.WebSocket;
  window.txzWebSocketCloses = 0;
  window.WebSocket = function (url, protocols) {
    var socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("close", function () { window.txzWebSocketCloses += 1; });
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (k) { window.WebSocket[k] = Native[k]; });
})();"""


def access_log(server):
    return (server.instance / "log" / "access.log").read_text(errors="replace")


def test_chromium_opens_the_websocket_over_h2_and_the_toast_shows(tls_server, chromium):
    from selenium.webdriver.support.ui import WebDriverWait

    base = tls_server.url("/Plone", kind="https").replace("127.0.0.1", "localhost")
    chromium.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_CLOSES})
    load(chromium, f"{base}/login")
    try:
        wait_for(lambda: '"GET /Plone/login HTTP/2"' in access_log(tls_server), 30,
                 what="the login page served over HTTP/2")
    except TimeoutError as timeout:
        # what the browser shows (an error page names its error) and what the server logged
        errors = sorted(set(re.findall(r"ERR_[A-Z0-9_]+", chromium.page_source)))
        raise AssertionError(
            f"{timeout}: the browser is at {chromium.current_url!r} titled {chromium.title!r}"
            f" (errors on the page: {errors})\naccess log:\n{access_log(tls_server)[-2000:]}\n"
            f"server log:\n{tls_server.log_tail()}") from None
    classic_login(chromium, base, "rita", PASSWORD)
    load(chromium, base)
    WebDriverWait(chromium, 30).until(
        lambda d: d.execute_script("return window.txzserverToasts && window.txzserverToasts.connected"))
    # The handshake came as an extended CONNECT on HTTP/2: the access log has its line (an
    # HTTP/1.1 upgrade writes none). The toast below is for a pending page only a Reviewer
    # may see: the __ac cookie authenticated the WebSocket.
    wait_for(lambda: '"CONNECT /Plone/ws HTTP/2" 200' in access_log(tls_server), 30,
             what="the WebSocket's access line")
    lines = [line for line in access_log(tls_server).splitlines() if "/Plone/ws" in line]
    assert all("HTTP/2" in line for line in lines), lines
    assert lines and all("CONNECT" in line for line in lines), lines

    submit_until_the_toast_shows(chromium, tls_server, "HTTP/2")


def submit_until_the_toast_shows(chromium, server, protocol):
    """An editor submits a page for review until the reviewer's toast for it shows in
    ``chromium`` (whose page counts its WebSockets' closes: COUNT_CLOSES).

    Chromium closes its HTTP/2 and QUIC sessions, and so a WebSocket on one, when the host's
    network changes (Docker and podman make interfaces while other tests run): an event sent
    while the toast script reconnects is lost to it. Such an attempt is repeated with a new
    page only when the page's WebSocket closed meanwhile; a toast missing while the socket
    stayed open is a failure."""
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def closes():
        return chromium.execute_script("return window.txzWebSocketCloses || 0")

    slug = protocol.lower().replace("/", "")
    for attempt in range(1, 4):
        closed_before = closes()
        WebDriverWait(chromium, 30).until(
            lambda d: d.execute_script("return window.txzserverToasts.connected"))
        title = f"Reviewed over {protocol} ({attempt})"
        api(server, "POST", "/Plone", user=("eddie", PASSWORD),
            json={"@type": "Document", "id": f"review-over-{slug}-{attempt}", "title": title})
        api(server, "POST", f"/Plone/review-over-{slug}-{attempt}/@workflow/submit",
            user=("eddie", PASSWORD))
        try:
            WebDriverWait(chromium, 30).until(lambda d: any(
                title in toast.text for toast in d.find_elements(
                    By.CSS_SELECTOR, "#txzserver-toasts .txzserver-toast-notification")))
            return
        except TimeoutException:
            closed = closes() - closed_before
            assert closed and attempt < 3, f"no toast for {title!r} (WebSocket closes meanwhile: {closed})"
            print(f"attempt {attempt}: the page's WebSocket closed meanwhile ({closed}); again")
