"""Volto with the volto-txzserver add-on, through the TLS front of a stack started with UI=volto
(`make smoke-volto`): the front page rendered by Volto's server (with the site's content, which
it asked the instances for) and again in the browser after hydration; a Reviewer logged into
Volto in headless Chromium gets the add-on's toast when an editor submits a page for review on
the other instance, and its link opens the page in Volto; an anonymous visitor gets none."""

import base64
import html
import json
import time
import uuid

import httpx
import pytest

from tests.robustness import ROWS
from tests.support.results import record

from .conftest import ROOT, api, container
from .test_image import docker

FIGURES = ROWS["volto_front"].figures

#: only against a stack started with UI=volto (conftest deselects it elsewhere)
STACK_UI = "volto"

#: Chromium accepts the front's certificate by its key (the development CA is in no trust store)
CERT = ROOT / "compose" / "certs" / "front.pem"

#: the issue's promise for a toast; each toast must also come within TOAST_CEILING (starvation)
TOAST_WITHIN = 2.0
TOAST_CEILING = 10.0

#: run in every page before its own scripts: records the page's WebSockets and what they got
RECORD_SOCKETS = """(function () {
  var Native = window.WebSocket;
  window.txzSockets = [];
  window.WebSocket = function (url, protocols) {
    var socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    var record = {url: String(url), open: false, closes: 0, messages: []};
    window.txzSockets.push(record);
    socket.addEventListener("open", function () { record.open = true; });
    socket.addEventListener("close", function () { record.open = false; record.closes += 1; });
    socket.addEventListener("message", function (m) { record.messages.push(String(m.data)); });
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (k) { window.WebSocket[k] = Native[k]; });
  // every toast of the add-on put into the page, with when, and when it left
  window.txzToasts = [];
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      change.addedNodes.forEach(function (node) {
        if (node.querySelectorAll) {
          node.querySelectorAll(".txzserver-toast").forEach(function (toast) {
            window.txzToasts.push({added: performance.now(), text: toast.textContent,
                                   kind: toast.className});
          });
        }
      });
      change.removedNodes.forEach(function (node) {
        if (node.querySelectorAll && node.querySelector(".txzserver-toast")) {
          window.txzToasts.push({removed: performance.now(), text: node.textContent});
        }
      });
    });
  }).observe(document, {childList: true, subtree: true});
})();"""


@pytest.fixture
def browser(tmp_path):
    """A factory of headless Chromium windows (each its own profile), all quit afterwards."""
    from tests.support.browser import spki_hash, start_chromium

    drivers = []

    def start(name):
        driver = start_chromium(
            tmp_path / name, f"--ignore-certificate-errors-spki-list={spki_hash(CERT)}",
            "--window-size=1280,900", "--host-resolver-rules=MAP localhost 127.0.0.1",
            # no QUIC: the WebSocket and the page share the TCP connection the test watches
            "--disable-quic")
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_SOCKETS})
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


def sockets(driver):
    return driver.execute_script("return window.txzSockets || []")


def welcome(driver):
    """The server's welcome on the page's open live connection (None before it)."""
    for socket in sockets(driver):
        if socket["open"]:
            for message in socket["messages"]:
                parsed = json.loads(message)
                if parsed.get("type") == "welcome":
                    return parsed
    return None


def test_front_page_rendered_by_volto_server_side(client):
    site = client.get("/++api++", headers={"Accept": "application/json"})
    assert site.status_code == 200, site.text[:300]
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text[:500]
    assert page.headers["content-type"].startswith("text/html")
    # Volto's server rendered the page with the site's content: the site title is in the HTML
    # and the state the browser hydrates from (window.__data) came with it
    assert html.escape(site.json()["title"]) in page.text
    assert "window.__data" in page.text
    assert page.http_version == "HTTP/2"


def test_api_and_downloads_reach_the_instances_with_this_origin(client, base_url, admin):
    site = client.get("/++api++", headers={"Accept": "application/json"})
    # virtual hosting: the site at the root of the front's origin
    assert site.json()["@id"] == base_url
    assert site.headers.get("X-Txzserver-Instance") in ("instance1", "instance2")
    name = f"volto-file-{uuid.uuid4().hex[:6]}"
    data = b"live notifications for Volto\n" * 1000
    api(client, "POST", "/++api++", admin, json={
        "@type": "File", "id": name, "title": name,
        "file": {"data": base64.b64encode(data).decode(), "encoding": "base64",
                 "filename": f"{name}.txt", "content-type": "text/plain"}})
    download = client.get(f"/{name}/@@download/file", auth=admin)
    assert download.status_code == 200, download.text[:300]
    assert download.content == data
    # served by an instance (its header), not passed along by Volto's Node server
    assert download.headers.get("X-Txzserver-Instance") in ("instance1", "instance2")


#: run by python3 in an instance's container: a plone.restapi POST on that instance itself
#: (argv: path, user, password), again while the path is unknown there (the page made through
#: the front may be ZEO's news for this instance for a moment); prints the status
POST_ON_INSTANCE = """
import base64, sys, time, urllib.error, urllib.request
path, user, password = sys.argv[1:4]
auth = base64.b64encode(f"{user}:{password}".encode()).decode()
deadline = time.monotonic() + 10
while True:
    request = urllib.request.Request("http://127.0.0.1:8080" + path, method="POST", data=b"",
        headers={"Accept": "application/json", "Authorization": "Basic " + auth})
    try:
        status = urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != 404 or time.monotonic() > deadline:
        break
    time.sleep(0.1)
print(status)
"""


def submit_on_instance(instance, path, user):
    """The workflow's submit of ``path`` (a site path), published by ``instance`` itself: the
    front balances each request, so only this way is the commit sure to be the other instance's."""
    result = docker("exec", container(instance), "python3", "-c", POST_ON_INSTANCE,
                    f"{path}/@workflow/submit", *user, timeout=60, check=False)
    assert result.stdout.strip() == "200", result.stdout + result.stderr


def settled(element, pause=0.3):
    """Whether ``element`` stayed where it is for ``pause`` seconds."""
    where = element.rect
    time.sleep(pause)
    return element.rect == where


def volto_login(driver, base_url, user, password):
    """Log in through Volto's own login form: a client-side form, so it works only once the
    server-rendered page has been hydrated."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from tests.support.browser import load

    load(driver, f"{base_url}/login")
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "login"))
    driver.find_element(By.ID, "login").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-form-submit").click()
    WebDriverWait(driver, 30).until(lambda d: d.get_cookie("auth_token") is not None)


def test_reviewer_gets_a_toast_in_volto_and_its_link_opens_the_page(base_url, client, people, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from tests.support.browser import load

    reviewer = browser("reviewer")
    volto_login(reviewer, base_url, *people["reviewer"])
    load(reviewer, f"{base_url}/")
    WebDriverWait(reviewer, 30).until(lambda d: welcome(d) is not None)
    hello = welcome(reviewer)
    assert hello["user"] == "reviewer", hello
    # the add-on's default endpoint, on the page's own origin
    assert any(s["url"] == f"wss://localhost:{base_url.rsplit(':', 1)[1]}/++api++/ws"
               for s in sockets(reviewer)), sockets(reviewer)

    anonymous = browser("anonymous")
    load(anonymous, f"{base_url}/")
    WebDriverWait(anonymous, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete")

    other = {"instance1": "instance2", "instance2": "instance1"}[hello["instance"]]
    delays = []
    for attempt in (1, 2):
        title = f"Needs review in Volto ({attempt})"
        page_id = f"volto-{uuid.uuid4().hex[:8]}"
        # as Volto makes a page: its title shown by a title block
        api(client, "POST", "/++api++", people["editor"], json={
            "@type": "Document", "id": page_id, "title": title,
            "blocks": {"title": {"@type": "title"}}, "blocks_layout": {"items": ["title"]}})
        started = time.monotonic()  # the docker exec's start is in the delay: it errs long
        submit_on_instance(other, f"/Plone/{page_id}", people["editor"])
        try:
            toast = WebDriverWait(reviewer, TOAST_CEILING, poll_frequency=0.05).until(lambda d: [
                t for t in d.find_elements(By.CSS_SELECTOR, ".Toastify .txzserver-toast-transition")
                if title in t.text])
        except TimeoutException:
            raise AssertionError(
                f"no toast for {title!r} within {TOAST_CEILING} s; the page's live connections: "
                f"{sockets(reviewer)}; toasts put into the page (ms): "
                f"{reviewer.execute_script('return window.txzToasts')}, now "
                f"{reviewer.execute_script('return performance.now()')}") from None
        delays.append(time.monotonic() - started)
        # the content rule's notification of the same commit comes right behind it: a toast of
        # its own too (not one replacing the other)
        WebDriverWait(reviewer, TOAST_CEILING, poll_frequency=0.05).until(lambda d: [
            t for t in d.find_elements(By.CSS_SELECTOR, ".Toastify .txzserver-toast-notification")
            if title in t.text])
    print(f"\nreviewer's toast {', '.join(f'{d:.3f}' for d in delays)} s after the submit on {other} began")
    record("volto_ui", "reviewer_toast", delays_s=[round(d, 3) for d in delays], submitted_on=other)
    assert min(delays) <= TOAST_WITHIN, delays

    # the toast's link: the page's Volto route (not the backend's /Plone/... path)
    link = toast[0].find_element(By.CSS_SELECTOR, "a.txzserver-toast-title")
    assert link.get_attribute("href") == f"{base_url}/{page_id}"
    # toasts slide in and push each other (the content rule's notification comes with this
    # one): a click lands where the link was when it was measured, so first let it settle
    WebDriverWait(reviewer, 10).until(lambda d: settled(link))
    link.click()
    WebDriverWait(reviewer, 30).until(lambda d: d.current_url == f"{base_url}/{page_id}")
    heading = WebDriverWait(reviewer, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "h1.documentFirstHeading"))
    assert heading[0].text == title
    # a client-side navigation: the same page, the same live connection
    assert welcome(reviewer)["instance"] == hello["instance"]

    # the anonymous visitor opened no live connection (the add-on's default) and got no toast
    assert sockets(anonymous) == []
    assert anonymous.find_elements(By.CSS_SELECTOR, ".txzserver-toast") == []


def test_volto_container_is_confined_and_healthy():
    info = json.loads(docker("inspect", container("volto")).stdout)[0]
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    user = info["Config"]["User"]
    assert user and user.split(":")[0] not in ("0", "root"), user
    assert info["State"]["Health"]["Status"] == "healthy", info["State"]["Health"]
    image = json.loads(docker("image", "inspect", info["Image"]).stdout)[0]
    record("volto_ui", "volto_image", size_mb=round(image["Size"] / 1e6), tag=info["Config"]["Image"])


def test_private_downloads_follow_the_volto_session_and_nothing_else(client, base_url, ssl_context,
                                                                    admin, people):
    """The front's cookie-to-Bearer rule for downloads: Plone decides, a forged token is nobody."""
    folder = f"volto-private-{uuid.uuid4().hex[:6]}"
    # a page of a Volto site holds items (plone.volto makes Documents folderish); private, as
    # made: the File in it (Files have no workflow of their own) is private with it
    api(client, "POST", "/++api++", admin, json={"@type": "Document", "id": folder, "title": folder})
    data = b"for members' eyes\n" * 100
    api(client, "POST", f"/++api++/{folder}", admin, json={
        "@type": "File", "id": "secret.txt", "title": "secret",
        "file": {"data": base64.b64encode(data).decode(), "encoding": "base64",
                 "filename": "secret.txt", "content-type": "text/plain"}})
    api(client, "POST", f"/++api++/{folder}/@sharing", admin, json={"entries": [
        {"id": "reviewer", "type": "user", "roles": {"Reader": True}}]})
    login = api(client, "POST", "/++api++/@login", None,
                json={"login": "reviewer", "password": people["reviewer"][1]})
    token = login.json()["token"]
    url = f"/{folder}/secret.txt/@@download/file"

    def download(cookie):
        with httpx.Client(base_url=base_url, verify=ssl_context, timeout=60) as fresh:
            return fresh.get(url, headers={"Cookie": cookie} if cookie else {})

    own = download(f"auth_token={token}")
    assert own.status_code == FIGURES["served"] and own.content == data
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for cookie in (None, f"auth_token={forged}", "auth_token=not-a-jwt", "auth_token="):
        refused = download(cookie)
        assert refused.status_code == FIGURES["refused"], (cookie, refused.status_code)
        assert "login" in refused.headers["location"], refused.headers["location"]
        assert data not in refused.content


def test_only_the_front_is_published():
    front = json.loads(docker("inspect", container("front")).stdout)[0]
    assert set(front["HostConfig"]["PortBindings"]) == {"8443/tcp", "8443/udp"}
    assert all(b["HostIp"] == "127.0.0.1" for bindings in front["HostConfig"]["PortBindings"].values()
               for b in bindings)
    assert f"{FIGURES['internal']}/tcp" not in front["HostConfig"]["PortBindings"]
    volto = json.loads(docker("inspect", container("volto")).stdout)[0]
    assert not volto["HostConfig"]["PortBindings"]
    assert f"{FIGURES['volto']}/tcp" in volto["Config"]["ExposedPorts"]
