"""Live notifications through the front: events cross instances; guards hold."""

import ssl
import time
import uuid

import httpx

from .conftest import CA, api
from .wss import welcomed


def ws_url(base_url):
    return base_url.replace("https://", "wss://") + "/Plone/ws"


def create_page_on_other_instance(base_url, user, avoid, title):
    """POST a Document until the front routes the commit to an instance other than ``avoid``
    (a new connection each time: the front balances connections, not requests)."""
    for _ in range(20):
        page_id = f"smoke-{uuid.uuid4().hex[:8]}"
        with httpx.Client(base_url=base_url, verify=ssl.create_default_context(cafile=str(CA)),
                          timeout=60) as fresh:
            response = api(fresh, "POST", "/Plone", user, json={"@type": "Document", "id": page_id,
                                                                "title": title})
        instance = response.headers["X-Txzserver-Instance"]
        if instance != avoid:
            return f"/Plone/{page_id}", instance
    raise AssertionError(f"every commit went to {avoid}")


def submit_when_visible(client, path, user, timeout=10):
    """Submit ``path`` for review. The front may send this request to the other instance, which
    sees the creation once ZEO's invalidation has arrived (a moment after the commit)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.post(f"{path}/@workflow/submit", auth=user, headers={"Accept": "application/json"})
        if response.status_code != 404 or time.monotonic() > deadline:
            assert response.status_code < 400, f"submit {path}: {response.status_code} {response.text[:300]}"
            return response
        time.sleep(0.2)


def test_event_committed_on_one_instance_reaches_socket_on_the_other(base_url, client, admin, people):
    watcher = welcomed(ws_url(base_url), CA, admin, name="admin")
    try:
        holder = watcher.welcome["instance"]
        assert holder in ("instance1", "instance2")
        assert watcher.response_headers["X-Txzserver-Instance"] == holder
        path, committer = create_page_on_other_instance(base_url, people["editor"], holder, "Across")
        assert committer != holder
        event = watcher.wait_for_event(type="created", path=path)[0]
        assert event["title"] == "Across"
        assert event["actor"] == "editor"
    finally:
        watcher.stop()


def test_member_does_not_get_the_reviewer_notification(base_url, client, people):
    reviewer = welcomed(ws_url(base_url), CA, people["reviewer"], name="reviewer")
    member = welcomed(ws_url(base_url), CA, people["member"], name="member")
    try:
        page_id = f"review-{uuid.uuid4().hex[:8]}"
        path = f"/Plone/{page_id}"
        api(client, "POST", "/Plone", people["editor"], json={"@type": "Document", "id": page_id,
                                                               "title": "Please review"})
        submit_when_visible(client, path, people["editor"])
        note = reviewer.wait_for_event(type="notification", path=path)[0]
        assert "Please review" in note["message"]
        time.sleep(1.5)  # long enough for a stray delivery
        assert not member.events(type="notification"), member.messages
        assert not member.events(path=path), "a Member must not see a pending item"
    finally:
        reviewer.stop()
        member.stop()
