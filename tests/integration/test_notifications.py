"""Live notifications across instances: two txzserver instances on one shared storage with a
broker between them; real users, real WebSocket clients, plone.restapi for the edits.

Every test runs twice: on a real ZEO server and on RelStorage with a real PostgreSQL (the
``cluster_storage`` fixture of conftest.py), each cluster on its own copy of the Plone site.
"""

import base64
import hashlib
import os
import time

import httpx

import pytest

from tests.robustness import ROWS
from tests.support.cluster import running_cluster
from tests.support.instance import ADMIN
from tests.support.restapi import add_users, api
from tests.support.wsclient import Collector, basic

PASSWORD = "secret-Passw0rd"
USERS = {  # name: global roles
    "member": ["Member"],
    "reviewer": ["Member", "Reviewer"],
    "editor": ["Member", "Editor"],
    "manager": ["Member", "Manager"],
    "localrev": ["Member"],
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, cluster_storage):
    with running_cluster(tmp_path_factory.mktemp("cluster"), cluster_storage, ("alpha", "beta"),
                         broker=True) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def people(cluster):
    alpha = cluster.instances["alpha"]
    add_users(alpha, USERS, PASSWORD)
    api(alpha, "POST", "/Plone", json={"@type": "Folder", "id": "reviewed", "title": "Reviewed"})
    api(alpha, "POST", "/Plone/reviewed/@sharing", json={"entries": [
        {"id": "localrev", "type": "user", "roles": {"Reviewer": True}},
        {"id": "editor", "type": "user", "roles": {"Contributor": True}}]})
    api(alpha, "POST", "/Plone/reviewed/@workflow/publish")
    return {name: (name, PASSWORD) for name in USERS}


def ws_url(server, path=None):
    url = server.url("/Plone/ws").replace("http://", "ws://")
    return url + (f"?path={path}" if path else "")


def connect_all(server, people, path=None):
    clients = {"anonymous": Collector(ws_url(server, path), name="anonymous")}
    for name, credentials in people.items():
        clients[name] = Collector(ws_url(server, path), basic(*credentials), name=name)
    for client in clients.values():
        client.start_and_wait()
    return clients


def stop_all(clients):
    for client in clients.values():
        client.stop()


def settle(seconds=1.5):
    time.sleep(seconds)  # long enough for any stray delivery; deliveries are asserted with deadlines


def test_content_made_on_one_instance_is_read_on_the_other(cluster):
    """The shared storage: a Document and a File (its blob) made on alpha are read on beta, an
    edit on beta is seen on alpha (each instance's caches invalidated by the other's commits)."""
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    if cluster.kind == "relstorage":
        chunks_before = cluster.sql("SELECT count(*) FROM blob_chunk")
    api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "shared", "title": "Made on alpha",
                                       "text": {"data": "<p>from alpha</p>",
                                                "content-type": "text/html"}})
    data = os.urandom(256 * 1024)
    api(alpha, "POST", "/Plone", json={
        "@type": "File", "id": "shared.bin", "title": "Shared blob",
        "file": {"data": base64.b64encode(data).decode("ascii"), "encoding": "base64",
                 "filename": "shared.bin", "content-type": "application/octet-stream"}})
    read = api(beta, "GET", "/Plone/shared")
    assert read.headers["X-Txzserver-Instance"] == "beta"
    assert read.json()["title"] == "Made on alpha" and "from alpha" in read.json()["text"]["data"]
    download = httpx.get(beta.url("/Plone/shared.bin/@@download/file"), auth=ADMIN, timeout=60)
    assert download.status_code == 200, download.status_code
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()
    if cluster.kind == "relstorage":  # the blob went to PostgreSQL, beta read it from there
        assert cluster.sql("SELECT count(*) FROM blob_chunk") > chunks_before
        assert not (cluster.directory / "alpha" / "var" / "Data.fs").exists()

    api(beta, "PATCH", "/Plone/shared", json={"title": "Edited on beta"})
    assert api(alpha, "GET", "/Plone/shared").json()["title"] == "Edited on beta"


def test_welcome_names_user_and_instance(cluster, people):
    beta = cluster.instances["beta"]
    client = Collector(ws_url(beta), basic(*people["reviewer"]), name="reviewer").start_and_wait()
    try:
        assert client.welcome["user"] == "reviewer"
        assert client.welcome["instance"] == "beta"
        assert client.welcome["subscriptions"] == ["/Plone"]
        assert client.response_headers["X-Txzserver-Instance"] == "beta"
    finally:
        client.stop()


def test_edit_on_alpha_reaches_client_on_beta_in_order_once(cluster, people):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    watcher = Collector(ws_url(beta, "/Plone/orderly"), basic(*ADMIN), name="admin").start_and_wait()
    try:
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "orderly", "title": "v0"})
        for n in range(1, 4):
            api(alpha, "PATCH", "/Plone/orderly", json={"title": f"v{n}"})
        watcher.wait_for_event(type="modified", title="v3")
        settle()
        events = [(e["type"], e["title"]) for e in watcher.events()]
        assert events == [("created", "v0"), ("modified", "v1"), ("modified", "v2"), ("modified", "v3")]
        assert all(e["path"] == "/Plone/orderly" for e in watcher.events())
        response = api(alpha, "GET", "/Plone/orderly")
        assert response.headers["X-Txzserver-Instance"] == "alpha"  # committed on alpha, seen on beta
        assert "guard" not in watcher.events()[0]
    finally:
        watcher.stop()


def test_guard_matrix_private_pending_published(cluster, people):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    clients = connect_all(beta, people)
    try:
        api(alpha, "POST", "/Plone/reviewed", user=people["editor"],
            json={"@type": "Document", "id": "draft", "title": "Draft"})
        path = "/Plone/reviewed/draft"
        for name in ("editor", "manager"):
            clients[name].wait_for_event(type="created", path=path)
        settle()
        for name in ("anonymous", "member", "reviewer", "localrev"):
            assert not clients[name].events(path=path), f"{name} must not see a private draft"

        api(alpha, "POST", f"{path}/@workflow/submit", user=people["editor"])
        for name in ("editor", "manager", "reviewer", "localrev"):
            clients[name].wait_for_event(type="transition", path=path)
        for name in ("reviewer", "localrev"):
            note = clients[name].wait_for_event(type="notification", path=path)[0]
            assert "Draft" in note["message"]
        settle()
        for name in ("anonymous", "member"):
            assert not clients[name].events(path=path), f"{name} must not see a pending item"
        for name in ("anonymous", "member", "editor", "manager"):
            assert not clients[name].events(type="notification"), f"{name} got the reviewer notice"

        api(alpha, "POST", f"{path}/@workflow/publish", user=people["reviewer"])
        for name in clients:
            clients[name].wait_for_event(type="transition", path=path, review_state="published")
    finally:
        stop_all(clients)


def test_delete_and_subscriptions(cluster, people):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    admin = Collector(ws_url(beta, "/Plone/reviewed"), basic(*ADMIN), name="admin").start_and_wait()
    try:
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "outside", "title": "Outside"})
        api(alpha, "POST", "/Plone/reviewed", json={"@type": "Document", "id": "gone", "title": "Gone"})
        admin.wait_for_event(type="created", path="/Plone/reviewed/gone")
        api(alpha, "DELETE", "/Plone/reviewed/gone")
        admin.wait_for_event(type="removed", path="/Plone/reviewed/gone")
        assert not admin.events(path="/Plone/outside"), "not subscribed to /Plone/outside"

        admin.send({"action": "subscribe", "path": "/Plone/outside/"})
        api(alpha, "PATCH", "/Plone/outside", json={"title": "Outside 2"})
        admin.wait_for_event(type="modified", path="/Plone/outside")
        status = [m for m in admin.messages if m.get("type") == "status"]
        assert status[-1]["subscriptions"] == ["/Plone/outside", "/Plone/reviewed"]
    finally:
        admin.stop()


def test_listen_command_prints_events(cluster, people):
    import json
    import selectors
    import subprocess
    from tests.support.instance import TXZSERVER
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    listener = subprocess.Popen(
        [TXZSERVER, "listen", ws_url(beta), "--user", f"{ADMIN[0]}:{ADMIN[1]}", "--path",
         "/Plone/listened", "--count", "1", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        selector = selectors.DefaultSelector()
        selector.register(listener.stderr, selectors.EVENT_READ)
        assert selector.select(timeout=30), "listen printed no welcome within 30 s"
        welcome = json.loads(listener.stderr.readline())
        assert welcome["type"] == "welcome" and welcome["subscriptions"] == ["/Plone/listened"]
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "listened", "title": "Heard"})
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    lines = out.strip().splitlines()
    assert listener.returncode == 0, err
    assert len(lines) == 1
    assert json.loads(lines[0])["path"] == "/Plone/listened"


def edit_until_heard(server, watcher, path, prefix, timeout=30):
    """Retitle ``path`` on ``server`` (PREFIX1, PREFIX2, ...) until ``watcher`` has a
    ``modified`` event or ``timeout`` seconds pass: events committed while the instances
    reconnect to a restarted broker may be lost (pub/sub). The number of edits made."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline and not watcher.events(type="modified"):
        n += 1
        api(server, "PATCH", path, json={"title": f"{prefix}{n}"})
        time.sleep(0.5)
    return n


def test_instances_reconnect_after_broker_restart(cluster, people):
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    watcher = Collector(ws_url(beta, "/Plone/phoenix"), basic(*ADMIN), name="admin").start_and_wait()
    try:
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "phoenix", "title": "p0"})
        watcher.wait_for_event(type="created", path="/Plone/phoenix")
        cluster.restart_broker()
        n = edit_until_heard(alpha, watcher, "/Plone/phoenix", "p")
        assert watcher.events(type="modified"), "no event crossed the restarted broker in 30 s"
        print(f"first event after the broker restart: edit #{n}")
    finally:
        watcher.stop()


def test_events_lost_while_the_broker_is_down_are_announced_as_a_gap(cluster, people):
    """Stop the broker, commit on alpha (that event is lost), start it again, commit more: a
    client on beta gets {"type": "gap"} before the next event, once, and so does a client
    subscribed elsewhere; `txzserver listen --fail-on-gap` exits with its documented status
    (docs/security.md's row; the toast is test_browser_toast.py's)."""
    import json
    import selectors
    import subprocess
    from tests.support.instance import TXZSERVER
    from txzserver.listen import GAP_STATUS
    alpha, beta = cluster.instances["alpha"], cluster.instances["beta"]
    watcher = Collector(ws_url(beta, "/Plone/gapped"), basic(*ADMIN), name="admin").start_and_wait()
    outsider = Collector(ws_url(beta, "/Plone/elsewhere"), name="anonymous").start_and_wait()
    listener = subprocess.Popen(
        [TXZSERVER, "listen", ws_url(beta), "--user", f"{ADMIN[0]}:{ADMIN[1]}", "--path",
         "/Plone/gapped", "--fail-on-gap", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        selector = selectors.DefaultSelector()
        selector.register(listener.stderr, selectors.EVENT_READ)
        assert selector.select(timeout=30), "listen printed no welcome within 30 s"
        assert json.loads(listener.stderr.readline())["type"] == "welcome"
        # beta hears alpha's run before the outage: its baseline
        api(alpha, "POST", "/Plone", json={"@type": "Document", "id": "gapped", "title": "g0"})
        watcher.wait_for_event(type="created", path="/Plone/gapped")

        cluster.broker.terminate()
        assert cluster.broker.wait(10) == 0, "broker did not stop cleanly on SIGTERM"
        api(alpha, "PATCH", "/Plone/gapped", json={"title": "lost"})  # nobody to forward it
        cluster.start_broker()
        n = edit_until_heard(alpha, watcher, "/Plone/gapped", "g")
        [arrived, *_] = watcher.wait_for_event(type="modified", timeout=5)
        print(f"first event after the broker came back: edit #{n} ({arrived['title']})")
        assert arrived["title"] != "lost"
        messages = [m for m in watcher.messages if m["type"] in ("gap", "modified")]
        gap = messages[0]
        assert gap["type"] == "gap", messages  # the gap comes before the event
        print(f"gap announced before it: {gap}")
        assert gap["instance"] == "alpha"
        # "lost" and the edits g1.. before the one that arrived (at least one event each)
        assert gap["missed"] >= int(arrived["title"][1:]), (gap, arrived)
        assert [m["type"] for m in watcher.messages].count("gap") == 1  # once per gap
        assert "guard" not in arrived and "seq" not in arrived

        # anonymous, subscribed elsewhere: the gap all the same, no content
        wait_deadline = time.monotonic() + 10
        while time.monotonic() < wait_deadline and not any(m["type"] == "gap" for m in outsider.messages):
            time.sleep(0.05)
        assert [m for m in outsider.messages if m["type"] != "welcome"] == [gap]

        out, err = listener.communicate(timeout=30)
        assert listener.returncode == GAP_STATUS == ROWS["bus_gap"].figures["gap_status"], err
        printed = [json.loads(line) for line in out.splitlines()]
        assert printed[-1] == gap  # exits at the first gap, after printing it
        assert [p["type"] for p in printed] == ["created", "gap"]
    finally:
        listener.kill()
        watcher.stop()
        outsider.stop()
