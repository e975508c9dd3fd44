"""Sites kept apart and safe links, on one server with two Plone sites in one Zope and a real
broker: what a Reviewer of /Plone may subscribe to and receive of /Plone2, principal changes
of one site against the connections of the other, an event with a ``javascript:`` url injected
on the bus, and (headless Chromium) the toast's link built from the page's origin and the
event's path.

The second site is built once for this module (tests/support/second_site.py, no example
content) on a copy of the session's template; the server, its broker and the site are this
module's only, stopped at its end.
"""

import json
import subprocess
import time

import httpx
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.test_browser_toast import chromium  # noqa: F401 (a fixture)
from tests.support.browser import classic_login
from tests.robustness import ROWS
from tests.support.instance import (
    ADMIN, BIN, ROOT, TXZSERVER, copy_instance_data, http_server, new_instance,
)
from tests.support.restapi import add_users, api
from tests.support.results import record
from tests.support.server import ServerProcess, wait_for
from tests.support.browser import load
from tests.support.wsclient import Collector, basic

PASSWORD = "secret-Passw0rd"
SECOND_SITE = ROOT / "tests" / "support" / "second_site.py"
METRICS = "/internal/prom"
SPLIT = ROWS["ws_site_split"].figures
LINKS = ROWS["ws_safe_links"].figures


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory, plone_template):
    """A server whose Zope holds /Plone (the template's) and /Plone2, on an event bus; users:
    rita (Reviewer of /Plone, and in /Plone2 a Reviewer too, later demoted), eddie (editor in
    both)."""
    directory = tmp_path_factory.mktemp("two-sites")
    bus = directory / "bus"
    bus.mkdir(mode=0o700)  # the broker refuses a bus directory open to others
    endpoints = {name: f"ipc://{bus}/{name}.sock" for name in ("publish", "subscribe")}
    extra = (f"server-threads 2\ninstance-name two-sites\n"
             f"<websocket>\n  path /ws\n  site Plone\n</websocket>\n"
             f"<event-bus>\n  publish {endpoints['publish']}\n  subscribe {endpoints['subscribe']}\n"
             f"</event-bus>\n"
             f"<metrics-server>\n  address 127.0.0.1:0\n  path {METRICS}/\n</metrics-server>\n")
    conf = new_instance(directory, http_server(0), extra)
    copy_instance_data(plone_template["directory"], directory)
    began = time.monotonic()
    subprocess.run([TXZSERVER, "run", str(conf), str(SECOND_SITE), "Plone2"], check=True,
                   cwd=directory, timeout=600, capture_output=True)
    built = time.monotonic() - began
    with open(bus / "broker.log", "ab") as log:
        broker = subprocess.Popen(
            [str(BIN / "txzserver"), "broker", "--frontend", endpoints["publish"], "--backend",
             endpoints["subscribe"], "--no-tasks"], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = None
    try:
        wait_for(lambda: (bus / "subscribe.sock").exists() or broker.poll() is not None, 30, 0.1,
                 "broker sockets")
        assert broker.poll() is None, (bus / "broker.log").read_text()
        began = time.monotonic()
        server = ServerProcess(conf).start()
        record("test_toast_links", "two_sites", second_site_s=round(built, 1),
               server_start_s=round(time.monotonic() - began, 1))
        server.bus = endpoints
        add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Editor", "Contributor"]},
                  PASSWORD)
        add_users(server, {"rita": ["Member", "Reviewer"], "eddie": ["Member", "Editor", "Contributor"]},
                  PASSWORD, site="Plone2")
        yield server
    finally:
        if server is not None:
            server.stop()
        broker.terminate()
        broker.wait(30)


def ws_url(server, site="Plone", query=""):
    return server.url(f"/{site}/ws{query}").replace("http://", "ws://")


def listening(server, site, user=ADMIN, name="client"):
    headers = basic(*user) if user is not None else {}
    return Collector(ws_url(server, site), headers, name=name).start_and_wait()


def submitted(server, site, doc_id, watcher):
    """A Document made by eddie in ``site`` and submitted for review; returns its path once
    ``watcher`` (admin on that site) has the transition: everything published before it has
    reached the server's hub by then (one publisher, one broker, in order)."""
    api(server, "POST", f"/{site}", user=("eddie", PASSWORD),
        json={"@type": "Document", "id": doc_id, "title": f"Review {doc_id}"})
    api(server, "POST", f"/{site}/{doc_id}/@workflow/submit", user=("eddie", PASSWORD))
    path = f"/{site}/{doc_id}"
    watcher.wait_for_event(type="transition", path=path)
    return path


def settle():
    time.sleep(SPLIT["settle_s"])  # a stray delivery would have come; deliveries use deadlines


# Sites kept apart

def test_a_reviewer_of_one_site_gets_nothing_of_the_other(two_sites):
    """The report's case: a Reviewer of /Plone subscribing to /Plone2 received the title of a
    document submitted for review there."""
    rita = Collector(ws_url(two_sites), basic("rita", PASSWORD), name="rita-plone")
    watchers = [listening(two_sites, "Plone", name="admin-plone"),
                listening(two_sites, "Plone2", name="admin-plone2")]
    clients = watchers + [rita.start_and_wait()]
    try:
        assert rita.welcome["site"] == "/Plone" and rita.welcome["subscriptions"] == ["/Plone"]
        rita.send({"action": "subscribe", "path": "/Plone2"})
        wait_for(lambda: [m for m in rita.messages if m["type"] == "error"], 20, 0.05, "the refusal")
        assert [m for m in rita.messages if m["type"] in ("error", "status")] == [{
            "type": "error", "message": "path /Plone2 is outside this connection's site /Plone:"
                                        " open a connection to that site's endpoint"}]
        other = submitted(two_sites, "Plone2", "split-other", watchers[1])
        ours = submitted(two_sites, "Plone", "split-ours", watchers[0])
        rita.wait_for_event(type="notification", path=ours)  # she receives her own site's
        settle()
        assert rita.events(path=other) == []
        assert not [m for m in rita.messages if "Review split-other" in json.dumps(m)]
    finally:
        for client in clients:
            client.stop()


def test_a_handshake_path_in_another_site_is_refused_with_403(two_sites):
    for query, site in (("?path=/Plone2", "Plone"), ("?path=/Plone/news", "Plone2")):
        with pytest.raises(InvalidStatus) as refused:
            with connect(ws_url(two_sites, site, query), additional_headers=basic("rita", PASSWORD),
                         open_timeout=30):
                pass
        response = refused.value.response
        assert response.status_code == SPLIT["refused"], (query, response.status_code)
        assert f"is outside this endpoint's site /{site}" in response.body.decode()


def test_a_role_change_in_one_site_leaves_the_other_sites_connections_alone(two_sites):
    """rita is a Reviewer in both sites; demoted in /Plone2, her /Plone2 connection stops
    receiving reviews there while her /Plone one keeps its own site's tokens (the change used
    to apply by bare user id: /Plone2's tokens replaced her /Plone ones)."""
    watchers = [listening(two_sites, "Plone", name="admin-plone"),
                listening(two_sites, "Plone2", name="admin-plone2")]
    on_plone = listening(two_sites, "Plone", ("rita", PASSWORD), "rita-plone")
    on_plone2 = listening(two_sites, "Plone2", ("rita", PASSWORD), "rita-plone2")
    clients = watchers + [on_plone, on_plone2]
    try:
        path = submitted(two_sites, "Plone2", "before-demotion", watchers[1])
        on_plone2.wait_for_event(type="notification", path=path)
        api(two_sites, "PATCH", "/Plone2/@users/rita", json={"roles": {"Reviewer": False}})
        ours = submitted(two_sites, "Plone", "after-demotion", watchers[0])
        theirs = submitted(two_sites, "Plone2", "after-demotion", watchers[1])
        on_plone.wait_for_event(type="notification", path=ours)
        settle()
        assert on_plone2.events(path=theirs) == [], "a demoted reviewer still receives in /Plone2"
        assert on_plone2.error is None and on_plone.error is None  # both still connected
    finally:
        for client in clients:
            client.stop()
    assert "tokens recomputed for changed principals: rita" in two_sites.log_text()


# Safe links

def scrape(server):
    answer = httpx.get(server.url(METRICS, kind="metrics"), timeout=10)
    assert answer.status_code == 200, answer.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def unsafe_dropped(server):
    return scrape(server).get(("txzserver_events_dropped_total",
                               frozenset({("reason", "unsafe-url")})), 0)


def test_an_event_with_a_javascript_url_injected_on_the_bus_reaches_nobody(two_sites):
    """A plain PUB socket on the broker (no keys: the bus has no authentication yet) sends a
    notification for Anonymous with a ``javascript:`` url; an anonymous client receives the
    markers sent around it, never it; the instance counts it."""
    anonymous = listening(two_sites, "Plone", user=None, name="anonymous")
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(two_sites.bus["publish"])

    def injected(path, url):
        return json.dumps({"type": "notification", "path": path, "url": url, "title": "Click me",
                           "guard": ["Anonymous"]}).encode()

    try:
        before = unsafe_dropped(two_sites)
        # a PUB socket's first messages go nowhere until it is connected: send a marker until
        # one arrives, then the attack between two markers
        wait_for(lambda: pub.send(injected("/Plone/marker-1", "http://localhost/Plone/m"))
                 or anonymous.events(path="/Plone/marker-1"), 20, 0.2, "the first marker")
        for _ in range(LINKS["injected"]):
            pub.send(injected("/Plone/clickme", LINKS["url"]))
        pub.send(injected("/Plone/marker-2", "http://localhost/Plone/m"))
        anonymous.wait_for_event(path="/Plone/marker-2")
        assert anonymous.events(path="/Plone/clickme") == []
        assert not [m for m in anonymous.messages if "javascript" in json.dumps(m)]
        assert unsafe_dropped(two_sites) - before == LINKS["injected"]
    finally:
        pub.close()
        anonymous.stop()
    assert two_sites.log_text().count("dropped an event from the bus with an unsafe url") == 1


def test_the_toast_links_to_the_event_path_on_the_pages_origin(two_sites, chromium):  # noqa: F811
    """The editor works on 127.0.0.1, so Plone's url for the event names that host; the
    reviewer's page is on localhost: her toast links to localhost + the event's path. A
    ``javascript:`` url handed to the page's handler never becomes an href."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    base = two_sites.url("/Plone").replace("127.0.0.1", "localhost")
    origin = base[: -len("/Plone")]
    classic_login(chromium, base, "rita", PASSWORD)
    load(chromium, base)
    WebDriverWait(chromium, 30).until(
        lambda d: d.execute_script("return window.txzserverToasts && window.txzserverToasts.connected"))
    assert chromium.execute_script("return window.txzserverToasts.site") == "/Plone"

    watcher = listening(two_sites, "Plone", name="admin-plone")
    try:
        path = submitted(two_sites, "Plone", "toast-link", watcher)
        [event] = watcher.events(type="transition", path=path)
    finally:
        watcher.stop()
    assert event["url"] == two_sites.url(path)  # Plone's url: the editor's host, 127.0.0.1
    toast = WebDriverWait(chromium, 30).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "#txzserver-toasts .txzserver-toast-notification")))
    link = toast.find_element(By.CSS_SELECTOR, "a.txzserver-toast-title")
    assert link.get_attribute("href") == origin + path

    hostile = [dict(type="notification", path="/Plone/clickme", title="javascript", url=LINKS["url"]),
               dict(type="modified", path="/Plone/elsewhere", title="elsewhere",
                    url="https://evil.example/Plone/elsewhere"),
               dict(type="modified", path="/Plone2/other-site", title="other site", url=LINKS["url"]),
               dict(type="modified", path="/Plone//evil.example/x", title="double slash",
                    url=LINKS["url"])]
    chromium.execute_script("arguments[0].forEach(function (e) { window.txzserverToasts.handle(e); });",
                            hostile)
    # {title: [tag, href]} of the toasts shown (the last five: these four and one of before)
    shown = chromium.execute_script(
        "var found = {}; document.querySelectorAll('#txzserver-toasts .txzserver-toast-title')"
        ".forEach(function (t) { found[t.textContent] = [t.tagName, t.getAttribute('href')]; });"
        " return found;")
    assert {title: shown[title] for title in ("javascript", "elsewhere", "other site", "double slash")} == {
        "javascript": ["A", origin + "/Plone/clickme"],
        "elsewhere": ["A", origin + "/Plone/elsewhere"],
        "other site": ["SPAN", None],  # not in the page's site: no link at all
        "double slash": ["A", origin + "/Plone//evil.example/x"],
    }
    assert all(href is None or href.startswith(origin + "/Plone/") for _, href in shown.values())
